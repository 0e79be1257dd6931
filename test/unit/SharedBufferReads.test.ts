import * as Net from "node:net"
import { assert, describe, it } from "@effect/vitest"
import { Effect } from "effect"
import { SharedBufferReads } from "../../src/net/SharedBufferReads.ts"

/** A connected pair over loopback: `near` accepted by a server, `far` its peer. Both allow half-close. */
const pair = Effect.acquireRelease(
  Effect.callback<{ readonly near: Net.Socket; readonly far: Net.Socket; readonly server: Net.Server }>((resume) => {
    const server = Net.createServer({ allowHalfOpen: true, highWaterMark: 1 }, (near) =>
      resume(Effect.succeed({ near, far, server })))
    let far: Net.Socket
    server.listen(0, "127.0.0.1", () => {
      const address = server.address()
      if (address === null || typeof address === "string") return
      far = Net.connect({ host: "127.0.0.1", port: address.port, allowHalfOpen: true })
    })
  }),
  ({ far, near, server }) =>
    Effect.sync(() => {
      near.destroy()
      far.destroy()
      server.close()
    })
)

const endOf = (socket: Net.Socket) => Effect.callback<void>((resume) => void socket.once("end", () => resume(Effect.void)))

describe("SharedBufferReads", () => {
  it("holds what a socket reads before its relay starts: it reads on while it holds a little, then stops", () => {
    const { buffer, callback } = new SharedBufferReads().onread
    const into = typeof buffer === "function" ? buffer() : buffer
    let held = 0
    // Reading goes on (no resume needed later) while little is held; the read that brings it past a few KiB stops it.
    for (let reads = 0; reads < 64 && callback(1000, into); reads++) held += 1000
    held += 1000
    assert.isAtLeast(held, 2 * 1000)
    assert.isBelow(held, 8 * 1024)
  })

  it.live("the backend's FIN reaches the client; the client's FIN then closes both sockets at once, both ways done", () =>
    Effect.gen(function*() {
      const client = yield* pair
      const backend = yield* pair
      new SharedBufferReads().into(client.near, backend.near)
      new SharedBufferReads().into(backend.near, client.near)
      let closedAtItsEnd: boolean | undefined
      client.near.on("end", () => closedAtItsEnd = client.near.destroyed)
      const clientGotFin = endOf(client.far)
      client.far.resume()
      backend.far.resume()
      backend.far.end()
      yield* clientGotFin
      // Half-closed: the client's side is still open the other way.
      assert.isFalse(client.near.destroyed)
      const backendGotFin = endOf(backend.far)
      client.far.end()
      yield* backendGotFin
      assert.isTrue(closedAtItsEnd)
      assert.isTrue(backend.near.destroyed)
    }).pipe(Effect.scoped))
})
