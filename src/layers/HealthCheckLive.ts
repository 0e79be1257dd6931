/**
 * The active health check: a backend passes when it accepts a connection and
 * takes what a real connection would start with, within the health timeout:
 * the PROXY header (a client-less one) when `--proxy-protocol` is on, and a
 * TLS handshake verified like a connection's when re-encrypting. The check's
 * connection is closed at once after that.
 *
 * @since 0.1.0
 */
import { readFile } from "node:fs/promises"
import type * as Net from "node:net"
import * as Effect from "effect/Effect"
import * as Layer from "effect/Layer"
import { type Backend, serverNameOf } from "../domain/Config.ts"
import * as ProxyProtocol from "../domain/ProxyProtocol.ts"
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
    const session = yield* Effect.mapError(
      module.originate(socket, serverNameOf(backend), ca, timeoutMs),
      (error) => new HealthCheckError({ backend: backend.address, reason: error.message, local: false })
    )
    session.destroy()
  })

/** Checks over the dialer in context. */
export const layer: Layer.Layer<HealthCheck, never, Dialer> = Layer.effect(
  HealthCheck,
  Dialer.useSync((dialer) =>
    HealthCheck.of({
      check: (backend: Backend, options: CheckOptions) => {
        const started = performance.now()
        return dialer.dial(backend, options.timeoutMs).pipe(
          Effect.mapError((error) =>
            new HealthCheckError({ backend: backend.address, reason: error.message, local: error.reason === "local" })
          ),
          Effect.flatMap((socket) => {
            const header = options.proxyProtocol === "off" ? undefined : ProxyProtocol.localHeader(options.proxyProtocol)
            if (header !== undefined) socket.write(header)
            if (options.tls === undefined) {
              // A header must reach the backend before the connection closes; without one, close at once.
              if (header === undefined) socket.destroy()
              else socket.destroySoon()
              return Effect.void
            }
            const left = Math.max(1, options.timeoutMs - (performance.now() - started))
            return secure(socket, backend, options.tls, left).pipe(Effect.ensuring(Effect.sync(() => socket.destroy())))
          })
        )
      }
    })
  )
)
