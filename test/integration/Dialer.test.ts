import { assert, describe, it } from "@effect/vitest"
import { Effect, Result } from "effect"
import * as Config from "../../src/domain/Config.ts"
import * as DialerLive from "../../src/layers/DialerLive.ts"
import { Dialer } from "../../src/services/Dialer.ts"
import { deadPort, server } from "./helpers.ts"

const backendAt = (address: string) => Result.getOrThrow(Config.backend(address))

describe("the live dialer", () => {
  it.live("a connected socket keeps none of the dial's listeners: one shared error listener until the relay watches", () =>
    Effect.gen(function*() {
      const backend = yield* server(() => {})
      const dialer = yield* Dialer
      const sockets = yield* Effect.forEach(
        [1, 2],
        () => Effect.acquireRelease(dialer.dial(backendAt(backend.address), 1_000), (socket) => Effect.sync(() => socket.destroy()))
      )
      for (const socket of sockets) {
        assert.strictEqual(socket.listenerCount("connect"), 0)
        assert.strictEqual(socket.listenerCount("error"), 1)
      }
      // The same listener on both: an open connection holds nothing of its dial.
      assert.strictEqual(sockets[0]!.listeners("error")[0], sockets[1]!.listeners("error")[0])
      // An error before the relay watches does not crash the process, and leaves the dial done.
      sockets[0]!.emit("error", new Error("reset by peer"))
      assert.isFalse(sockets[1]!.destroyed)
    }).pipe(Effect.scoped, Effect.provide(DialerLive.layer)))

  it.live("a port nothing listens on fails the dial as refused", () =>
    Effect.gen(function*() {
      const port = yield* deadPort
      const dialer = yield* Dialer
      const error = yield* Effect.flip(dialer.dial(backendAt(`127.0.0.1:${port}`), 1_000))
      assert.strictEqual(error.reason, "refused")
      assert.strictEqual(error.backend, `127.0.0.1:${port}`)
    }).pipe(Effect.provide(DialerLive.layer)))
})
