import { assert, describe, it } from "@effect/vitest"
import { Context, Deferred, Effect, Exit, Fiber, Layer, Scope } from "effect"
import * as ConnectionsLive from "../../src/layers/ConnectionsLive.ts"
import { Connections } from "../../src/services/Connections.ts"
import { freshMetrics } from "./fixtures.ts"

const connections = ConnectionsLive.layer.pipe(Layer.provide(freshMetrics))

/** A connection that runs until `done` completes, and records how it ended. */
const connection = (done: Deferred.Deferred<void>, ended: Array<string>, name: string) =>
  Deferred.await(done).pipe(
    Effect.onExit((exit) => Effect.sync(() => ended.push(`${name}:${exit._tag}`)))
  )

describe("Connections", () => {
  it.effect("counts open connections; a slot freed by one that ended serves the next; awaitEmpty waits for the last", () =>
    Effect.gen(function*() {
      const { awaitEmpty, open, runUnsafe } = yield* Connections
      const ended: Array<string> = []
      const done = yield* Effect.forEach([1, 2, 3], () => Deferred.make<void>())
      done.forEach((deferred, i) => runUnsafe(connection(deferred, ended, `c${i}`)))
      assert.strictEqual(open(), 3)
      yield* Deferred.succeed(done[1]!, undefined)
      assert.strictEqual(open(), 2)
      const again = yield* Deferred.make<void>()
      runUnsafe(connection(again, ended, "c3"))
      assert.strictEqual(open(), 3)
      const emptied = yield* Effect.forkChild(awaitEmpty)
      yield* Effect.yieldNow
      yield* Deferred.succeed(done[0]!, undefined)
      yield* Deferred.succeed(done[2]!, undefined)
      yield* Effect.yieldNow
      assert.strictEqual(open(), 1)
      assert.isUndefined(emptied.pollUnsafe(), "not empty while one connection is open")
      yield* Deferred.succeed(again, undefined)
      yield* Fiber.join(emptied)
      assert.strictEqual(open(), 0)
      assert.sameMembers(ended, ["c0:Success", "c1:Success", "c2:Success", "c3:Success"])
      // Nothing open: completes at once.
      yield* awaitEmpty
    }).pipe(Effect.provide(connections)))

  it.effect("interruptAll interrupts every open connection and waits for them", () =>
    Effect.gen(function*() {
      const { interruptAll, open, runUnsafe } = yield* Connections
      const ended: Array<string> = []
      const never = yield* Deferred.make<void>()
      for (const name of ["a", "b"]) runUnsafe(connection(never, ended, name))
      yield* interruptAll
      assert.strictEqual(open(), 0)
      assert.sameMembers(ended, ["a:Failure", "b:Failure"])
    }).pipe(Effect.provide(connections)))

  it.effect("closing the layer interrupts what is open, and a connection run after that is interrupted at once", () =>
    Effect.gen(function*() {
      const scope = yield* Scope.make()
      const context = yield* Layer.buildWithScope(connections, scope)
      const { open, runUnsafe } = Context.get(context, Connections)
      const ended: Array<string> = []
      const never = yield* Deferred.make<void>()
      runUnsafe(connection(never, ended, "open"))
      yield* Scope.close(scope, Exit.void)
      assert.deepStrictEqual(ended, ["open:Failure"])
      runUnsafe(connection(never, ended, "late"))
      assert.deepStrictEqual(ended, ["open:Failure", "late:Failure"])
      assert.strictEqual(open(), 0)
    }))
})
