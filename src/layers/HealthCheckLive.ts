/**
 * The active health check: a backend passes when it accepts a connection and
 * takes what a real connection would start with, within the health timeout:
 * the PROXY header (a client-less one) when `--proxy-protocol` is on, and a
 * TLS handshake verified like a connection's when re-encrypting. With a
 * payload check it must then take the check's request and answer as
 * expected. The check's connection is closed as soon as the check decides.
 *
 * @since 0.1.0
 */
import { readFile } from "node:fs/promises"
import type * as Net from "node:net"
import type { Duplex } from "node:stream"
import * as Effect from "effect/Effect"
import * as Layer from "effect/Layer"
import { type Backend, serverNameOf } from "../domain/Config.ts"
import * as ProxyProtocol from "../domain/ProxyProtocol.ts"
import * as Text from "../domain/Text.ts"
import * as Probe from "../net/Probe.ts"
import { Dialer } from "../services/Dialer.ts"
import { type CheckOptions, HealthCheck, HealthCheckError } from "../services/HealthCheck.ts"

type TlsModule = typeof import("../net/Tls.ts")

/** The TLS code, loaded when a check first needs it. */
const loadTls = Effect.promise((): Promise<TlsModule> => import("../net/Tls.ts"))

/** A handshake toward the backend over `socket`, verified against the CA file when given, in what is left of the time. */
const secure = (socket: Net.Socket, backend: Backend, tls: { readonly ca: string | undefined }, timeoutMs: number) =>
  Effect.gen(function*() {
    const module = yield* loadTls
    const ca = tls.ca === undefined ? undefined : yield* Effect.tryPromise({
      try: () => readFile(tls.ca ?? ""),
      catch: (cause) => new HealthCheckError({ backend: backend.address, reason: `cannot read ${tls.ca}: ${cause}`, local: true })
    })
    return yield* Effect.mapError(
      module.originate(socket, serverNameOf(backend), ca, timeoutMs),
      (error) => new HealthCheckError({ backend: backend.address, reason: error.message, local: false })
    )
  })

/** The payload check over `stream`, in what is left of the time; a failure is logged at debug level with what arrived. */
const exchange = (stream: Duplex, backend: Backend, probe: Probe.Probe, timeoutMs: number) =>
  Probe.run(stream, probe, timeoutMs).pipe(
    Effect.catch((error) => {
      const failure = new HealthCheckError({ backend: backend.address, reason: error.reason, local: false })
      return Effect.logDebug(failure.message).pipe(
        Effect.annotateLogs({ received: Text.quoteBytes(error.received, Probe.maxShown) }),
        Effect.andThen(Effect.fail(failure))
      )
    })
  )

/** Checks over the dialer in context. */
export const layer: Layer.Layer<HealthCheck, never, Dialer> = Layer.effect(
  HealthCheck,
  Dialer.useSync((dialer) =>
    HealthCheck.of({
      check: (backend: Backend, options: CheckOptions) => {
        const started = performance.now()
        const left = () => Math.max(1, options.timeoutMs - (performance.now() - started))
        const probe = Probe.make(options.payload, backend, options.tls !== undefined)
        return dialer.dial(backend, options.timeoutMs).pipe(
          Effect.mapError((error) =>
            new HealthCheckError({ backend: backend.address, reason: error.message, local: error.reason === "local" })
          ),
          Effect.flatMap((socket) => {
            const header = options.proxyProtocol === "off" ? undefined : ProxyProtocol.localHeader(options.proxyProtocol)
            if (header !== undefined) socket.write(header)
            if (options.tls === undefined && probe === undefined) {
              // A header must reach the backend before the connection closes; without one, close at once.
              if (header === undefined) socket.destroy()
              else socket.destroySoon()
              return Effect.void
            }
            return Effect.acquireUseRelease(
              options.tls === undefined ? Effect.succeed<Duplex>(socket) : secure(socket, backend, options.tls, left()),
              (stream) => probe === undefined ? Effect.void : exchange(stream, backend, probe, left()),
              (stream) => Effect.sync(() => stream.destroy())
            ).pipe(Effect.ensuring(Effect.sync(() => socket.destroy())))
          })
        )
      }
    })
  )
)
