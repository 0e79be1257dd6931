/**
 * The client-facing listener. Each accepted socket is served by its own fiber
 * (see {@link Connections}); closing the layer's scope stops listening at
 * once, lets open connections finish for up to the grace period (or until
 * `DrainCut` completes), then interrupts what is left, which resets its
 * sockets.
 *
 * @since 0.1.0
 */
import { readFileSync } from "node:fs"
import * as Net from "node:net"
import * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
import { constVoid } from "effect/Function"
import * as Layer from "effect/Layer"
import * as SubscriptionRef from "effect/SubscriptionRef"
import * as Address from "../domain/Address.ts"
import { Connection } from "../services/Connection.ts"
import { Connections } from "../services/Connections.ts"
import { ListenError, Listener } from "../services/Listener.ts"
import { LogLimits } from "../services/LogLimits.ts"
import { Settings } from "../services/Settings.ts"
import { DrainCut, Draining } from "../services/Shutdown.ts"

/** The process's soft limit on open files, where the system says (Linux's /proc); undefined elsewhere. */
const descriptorLimit = (): number | undefined => {
  try {
    const line = /^Max open files\s+(\d+)/m.exec(readFileSync("/proc/self/limits", "utf8"))
    return line === null ? undefined : Number(line[1])
  } catch {
    return undefined
  }
}

/** Descriptors a proxy needs besides two per connection: listeners, checks, logs, the runtime's own. */
const descriptorMargin = 64

/** System errors of `accept` that mean the proxy ran out of something, not that a client misbehaved. */
const localCodes = new Set(["EMFILE", "ENFILE", "ENOBUFS", "ENOMEM"])

/**
 * Warns when the process's open-file limit cannot hold `maxConnections`
 * client connections in each of its `workers` (two descriptors each, plus a
 * margin).
 */
export const checkDescriptors = (maxConnections: number, workers = 1) =>
  Effect.suspend(() => {
    const limit = descriptorLimit()
    const needed = 2 * maxConnections * workers + descriptorMargin
    const holding = workers > 1 ? `--max-connections ${maxConnections} in each of ${workers} workers` : `--max-connections ${maxConnections}`
    return limit === undefined || limit >= needed ? Effect.void : Effect.logWarning(
      `the open-file limit (${limit}) cannot hold ${holding}, which needs about ${needed} descriptors: raise it (ulimit -n) or lower --max-connections`
    )
  })

const bind = (server: Net.Server, address: Address.ListenAddress, reusePort: boolean) =>
  Effect.callback<Net.AddressInfo, ListenError>((resume) => {
    const text = Address.format(address.host, address.port)
    const onError = (cause: NodeJS.ErrnoException) => resume(Effect.fail(new ListenError({ address: text, cause })))
    server.once("error", onError)
    server.listen({ host: address.host, port: address.port, ...(reusePort ? { reusePort } : {}) }, () => {
      server.off("error", onError)
      const bound = server.address()
      if (bound === null || typeof bound === "string") {
        return resume(Effect.fail(new ListenError({ address: text, cause: new Error("not a TCP address") })))
      }
      resume(Effect.succeed(bound))
    })
  })

/** How a listener binds, and whether it says so. */
export interface ListenOptions {
  /** Bind with SO_REUSEPORT, so that other workers can listen on the same address (the kernel spreads connections). */
  readonly reusePort?: boolean
  /** Log `listening on` and check the open-file limit (the control part does that for its workers). */
  readonly announce?: boolean
}

/** Listens for clients and hands each to the {@link Connection} handler; fails when the address cannot be bound. */
export const layerWith = (
  options: ListenOptions
): Layer.Layer<Listener, ListenError, Connection | Connections | Draining | Settings | LogLimits> => Layer.effect(
  Listener,
  Effect.gen(function*() {
    const connection = yield* Connection
    const connections = yield* Connections
    const settings = yield* Settings
    const draining = yield* Draining
    const cut = yield* DrainCut
    const logLimits = yield* LogLimits
    const context = yield* Effect.context<never>()
    // A high-water mark of one byte: writing to a client reports backpressure as soon as a write is pending, and a
    // paused client is read no further than one read.
    const server = Net.createServer({ allowHalfOpen: true, noDelay: true, highWaterMark: 1 }, (socket) => {
      // Until the relay watches it, an error on the socket must not crash the process.
      socket.on("error", constVoid)
      connections.runUnsafe(connection.handle(socket))
    })
    const bound = yield* bind(server, (yield* SubscriptionRef.get(settings)).listen, options.reusePort === true)
    // Accepting fails when the proxy is out of descriptors: it keeps listening and accepts again once some are free.
    server.on("error", (error: NodeJS.ErrnoException) => {
      const local = error.code !== undefined && localCodes.has(error.code)
      Effect.runForkWith(context)(logLimits.log({
        kind: local ? "accept failed" : "listener error",
        perSecond: 1,
        level: "error",
        message: local
          ? `accept failed: ${error.code} (out of file descriptors or memory); clients are turned away until some are free`
          : `listener error: ${error.message}`
      }))
    })
    const address = { host: bound.address, port: bound.port }
    if (options.announce !== false) {
      yield* Effect.logInfo(`listening on ${Address.format(address.host, address.port)}`)
      yield* checkDescriptors((yield* SubscriptionRef.get(settings)).maxConnections)
    }

    yield* Effect.addFinalizer(() =>
      Effect.gen(function*() {
        server.close()
        yield* draining.begin
        const open = connections.open()
        if (open > 0) {
          const { grace } = yield* SubscriptionRef.get(settings)
          yield* Effect.logInfo(`draining ${open} connection(s) for up to ${Duration.format(grace)}`)
          yield* Effect.raceFirst(Effect.timeoutOption(connections.awaitEmpty, grace), cut)
        }
        yield* connections.interruptAll
      })
    )
    return Listener.of({ address })
  })
)

/** Listens for clients on the configured address, alone on it. */
export const layer: Layer.Layer<Listener, ListenError, Connection | Connections | Draining | Settings | LogLimits> = layerWith({})
