/**
 * Embedding the proxy in an Effect program: the app brings its own backend
 * registry (fed by its own "discovery", here a backend it starts itself),
 * runs the proxy inside its own scope, sends one request through it, and
 * ends; closing the scope drains and stops the proxy.
 *
 *   node example/embedded.ts
 */
import * as Net from "node:net"
import { NodeRuntime } from "@effect/platform-node"
import { Console, Context, Effect, Layer, Result } from "effect"
import { BackendRegistry, BackendRegistryLive, Config, Listener, Pool, TcpProxy } from "../src/index.ts"

/** A backend the app runs itself: it answers `[embedded] <what you sent>`. */
const backend = Effect.acquireRelease(
  Effect.callback<Net.Server>((resume) => {
    const server = Net.createServer((socket) => {
      socket.on("data", (chunk) => socket.end(`[embedded] ${chunk}`))
      socket.on("error", () => {})
    })
    server.listen(0, "127.0.0.1", () => resume(Effect.succeed(server)))
  }),
  (server) => Effect.sync(() => server.close())
)

const portOf = (server: Net.Server): number => {
  const address = server.address()
  return address !== null && typeof address === "object" ? address.port : 0
}

/** Sends a line through the proxy and returns the reply. */
const ask = (port: number, line: string) =>
  Effect.callback<string, Error>((resume) => {
    const socket = Net.connect({ host: "127.0.0.1", port }, () => socket.write(line))
    let reply = ""
    socket.on("data", (chunk) => (reply += chunk))
    socket.on("error", (error) => resume(Effect.fail(error)))
    socket.on("close", () => resume(Effect.succeed(reply)))
  })

const program = Effect.gen(function*() {
  const server = yield* backend
  // The app's own registry: it starts empty, and the app's discovery fills it.
  const registry = Layer.effect(BackendRegistry, BackendRegistryLive.make([]))
  const config = Config.make({ listen: { host: "127.0.0.1", port: 0 }, backends: [] })
  const proxy = yield* Layer.build(TcpProxy.layer(config, { registry }))
  const discovered = Result.getOrThrow(Config.backend(`127.0.0.1:${portOf(server)}`))
  yield* Context.get(proxy, Pool).registry.update([discovered])
  const { port } = Context.get(proxy, Listener).address
  yield* Console.log(yield* ask(port, "hello through the embedded proxy"))
})

NodeRuntime.runMain(Effect.scoped(program))
