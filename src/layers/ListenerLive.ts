/**
 * The client-facing listener. Each accepted socket is served by its own fiber
 * (see {@link Connections}); closing the layer's scope stops listening at
 * once, lets open connections finish for up to the grace period (or until
 * `DrainCut` completes), then interrupts what is left, which resets its
 * sockets.
 *
 * @since 0.1.0
 */
import * as Net from "node:net"
import * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
import * as Layer from "effect/Layer"
import * as SubscriptionRef from "effect/SubscriptionRef"
import * as Address from "../domain/Address.ts"
import { Connection } from "../services/Connection.ts"
import { Connections } from "../services/Connections.ts"
import { ListenError, Listener } from "../services/Listener.ts"
import { Settings } from "../services/Settings.ts"
import { DrainCut, Draining } from "../services/Shutdown.ts"

const ignore = () => {}

const bind = (server: Net.Server, address: Address.ListenAddress) =>
  Effect.callback<Net.AddressInfo, ListenError>((resume) => {
    const text = Address.format(address.host, address.port)
    const onError = (cause: NodeJS.ErrnoException) => resume(Effect.fail(new ListenError({ address: text, cause })))
    server.once("error", onError)
    server.listen({ host: address.host, port: address.port }, () => {
      server.off("error", onError)
      const bound = server.address()
      if (bound === null || typeof bound === "string") {
        return resume(Effect.fail(new ListenError({ address: text, cause: new Error("not a TCP address") })))
      }
      resume(Effect.succeed(bound))
    })
  })

/** Listens for clients and hands each to the {@link Connection} handler; fails when the address cannot be bound. */
export const layer: Layer.Layer<Listener, ListenError, Connection | Connections | Draining | Settings> = Layer.effect(
  Listener,
  Effect.gen(function*() {
    const connection = yield* Connection
    const connections = yield* Connections
    const settings = yield* Settings
    const draining = yield* Draining
    const cut = yield* DrainCut
    const context = yield* Effect.context<never>()
    const server = Net.createServer({ allowHalfOpen: true, noDelay: true }, (socket) => {
      // Until the relay watches it, an error on the socket must not crash the process.
      socket.on("error", ignore)
      connections.runUnsafe(connection.handle(socket))
    })
    const bound = yield* bind(server, (yield* SubscriptionRef.get(settings)).listen)
    server.on("error", (error) => Effect.runForkWith(context)(Effect.logError(`listener error: ${error.message}`)))
    const address = { host: bound.address, port: bound.port }
    yield* Effect.logInfo(`listening on ${Address.format(address.host, address.port)}`)

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
