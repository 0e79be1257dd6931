/**
 * The client-facing listener. Each accepted socket is served by its own fiber
 * in a `FiberSet`; closing the layer's scope stops listening at once, lets
 * open connections finish for up to the grace period (or until `DrainCut`
 * completes), then interrupts what is left, which closes its sockets.
 *
 * @since 0.1.0
 */
import * as Net from "node:net"
import * as Data from "effect/Data"
import * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
import * as FiberSet from "effect/FiberSet"
import * as Layer from "effect/Layer"
import * as Address from "../domain/Address.ts"
import { ConnectionHandler } from "../services/ConnectionHandler.ts"
import { Listener } from "../services/Listener.ts"
import { Settings } from "../services/Settings.ts"
import { DrainCut, Draining } from "../services/Shutdown.ts"

/** The listen address could not be bound. */
export class ListenError extends Data.TaggedError("ListenError")<{
  readonly address: string
  readonly cause: NodeJS.ErrnoException
}> {
  override get message(): string {
    const why = this.cause.code === "EADDRINUSE"
      ? "address already in use"
      : this.cause.code === "EACCES"
      ? "permission denied"
      : this.cause.code === "EADDRNOTAVAIL"
      ? "address not available"
      : this.cause.message
    return `cannot listen on ${this.address}: ${why}`
  }
}


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

/** Listens for clients and hands each to the {@link ConnectionHandler}; fails when the address cannot be bound. */
export const layer: Layer.Layer<Listener, ListenError, ConnectionHandler | Draining | Settings> =
  Layer.effect(Listener, Effect.gen(function*() {
    const handler = yield* ConnectionHandler
    const settings = yield* Settings
    const draining = yield* Draining
    const cut = yield* DrainCut
    const context = yield* Effect.context<never>()
    const connections = yield* FiberSet.make()
    const run = yield* FiberSet.runtime(connections)()
    const server = Net.createServer({ allowHalfOpen: true, noDelay: true }, (socket) => {
      // Until the relay watches it, an error on the socket must not crash the process.
      socket.on("error", ignore)
      run(handler.handle(socket))
    })
    const bound = yield* bind(server, (yield* settings.current).listen)
    server.on("error", (error) => Effect.runForkWith(context)(Effect.logError(`listener error: ${error.message}`)))
    const address = { host: bound.address, port: bound.port }
    yield* Effect.logInfo(`listening on ${Address.format(address.host, address.port)}`)

    yield* Effect.addFinalizer(() =>
      Effect.gen(function*() {
        server.close()
        yield* draining.begin
        const open = yield* FiberSet.size(connections)
        if (open > 0) {
          const { grace } = yield* settings.current
          yield* Effect.logInfo(`draining ${open} connection(s) for up to ${Duration.format(grace)}`)
          yield* Effect.raceFirst(
            Effect.timeoutOption(FiberSet.awaitEmpty(connections), grace),
            cut
          )
        }
        yield* FiberSet.clear(connections)
      })
    )
    return Listener.of({ address })
  }))
