import * as Net from "node:net"
import { assert, describe, it } from "@effect/vitest"
import { Deferred, Effect, Exit, Fiber, Layer, Scope } from "effect"
import * as Config from "../../src/domain/Config.ts"
import * as LogLimitsLive from "../../src/layers/LogLimitsLive.ts"
import * as PoolLive from "../../src/layers/PoolLive.ts"
import * as SettingsLive from "../../src/layers/SettingsLive.ts"
import { DialError, Dialer, type DialFailure } from "../../src/services/Dialer.ts"
import { HealthCheck } from "../../src/services/HealthCheck.ts"
import { Pool } from "../../src/services/Pool.ts"
import { Resolver } from "../../src/services/Resolver.ts"
import { backend, freshMetrics } from "./fixtures.ts"

const a = backend("10.0.0.1", 80)
const b = backend("10.0.0.2", 80)
const c = backend("10.0.0.3", 80)

/** What the scripted dialer does for an address: connect, fail with a reason, or never answer. */
type Script = "connect" | DialFailure | "hang"

/**
 * A pool over doubles: a dialer that follows `scripts` (connecting returns a
 * fresh, unconnected socket the test never uses) and records every dial, a
 * health check that always passes, and no names to resolve.
 */
const world = (backends: ReadonlyArray<Config.Backend>, scripts: Record<string, Script>, health: Partial<Config.HealthSettings> = {}) => {
  const dialled: Array<string> = []
  const ScriptedDialer = Layer.succeed(Dialer)({
    dial: (target) =>
      Effect.suspend(() => {
        dialled.push(target.address)
        const script = scripts[target.address] ?? "connect"
        if (script === "connect") return Effect.succeed(new Net.Socket())
        if (script === "hang") return Effect.never
        return Effect.fail(new DialError({ backend: target.address, reason: script, code: script === "local" ? "EMFILE" : undefined }))
      })
  })
  const config = Config.make({ backends, health: { ...Config.defaults.health, ...health } })
  const layer = PoolLive.layer(Config.defaultPool(config)).pipe(
    Layer.provide(Layer.mergeAll(
      ScriptedDialer,
      Layer.succeed(HealthCheck)({ check: () => Effect.void }),
      Layer.succeed(Resolver)({ resolve: () => Effect.succeed([]) }),
      SettingsLive.layer(config),
      LogLimitsLive.layer,
      freshMetrics
    ))
  )
  return { layer, dialled }
}

const request = (retries = 2) => ({
  client: { ip: "192.0.2.1", port: 40000 },
  dialTimeoutMs: 1000,
  keepAliveMs: 0,
  retries,
  preamble: undefined,
  tls: undefined
})

/** The active count and state of each member, by address. */
const members = Effect.gen(function*() {
  const pool = yield* Pool
  const all = yield* pool.registry.all
  return Object.fromEntries(all.map((status) => [status.backend.address, `${status.state} ${status.activeConnections}`]))
})

describe("PoolLive", () => {
  it.effect("a connected backend counts as active until the caller's scope closes", () => {
    const { dialled, layer } = world([a], {})
    return Effect.gen(function*() {
      const pool = yield* Pool
      const scope = yield* Scope.make()
      const upstream = yield* pool.connect(request(), scope)
      assert.strictEqual(upstream.backend.backend.address, a.address)
      assert.deepStrictEqual(yield* members, { [a.address]: "HEALTHY 1" })
      yield* Scope.close(scope, Exit.void)
      assert.deepStrictEqual(yield* members, { [a.address]: "HEALTHY 0" })
      assert.isTrue(upstream.connection.destroyed, "closing the scope closes the backend connection")
      assert.deepStrictEqual(dialled, [a.address])
    }).pipe(Effect.provide(layer))
  })

  it.effect("retries go to the next candidates, never to a backend already tried", () => {
    const { dialled, layer } = world([a, b, c], { [a.address]: "refused", [b.address]: "timeout" })
    return Effect.gen(function*() {
      const pool = yield* Pool
      for (let i = 0; i < 20; i++) {
        dialled.length = 0
        const upstream = yield* Effect.scopedWith((scope) => pool.connect(request(5), scope))
        assert.strictEqual(upstream.backend.backend.address, c.address)
        assert.strictEqual(new Set(dialled).size, dialled.length, `repeated a backend: ${dialled}`)
      }
    }).pipe(Effect.provide(layer))
  })

  it.effect("when every try fails the connection fails with the last backend tried, and every lease is back", () => {
    const { dialled, layer } = world([a, b, c], { [a.address]: "refused", [b.address]: "refused", [c.address]: "refused" }, {
      unhealthyThreshold: 100
    })
    return Effect.gen(function*() {
      const pool = yield* Pool
      const exit = yield* Effect.exit(Effect.scopedWith((scope) => pool.connect(request(1), scope)))
      assert.isTrue(Exit.isFailure(exit))
      const error = Exit.isFailure(exit) ? exit.cause.reasons[0] : undefined
      assert.isTrue(error?._tag === "Fail" && error.error._tag === "DialFailed" && error.error.backend === dialled.at(-1))
      assert.strictEqual(dialled.length, 2, "one try and one retry")
      assert.deepStrictEqual(yield* members, { [a.address]: "HEALTHY 0", [b.address]: "HEALTHY 0", [c.address]: "HEALTHY 0" })
    }).pipe(Effect.provide(layer))
  })

  it.effect("an interrupted dial gives its place back", () => {
    const { layer } = world([a], { [a.address]: "hang" })
    return Effect.gen(function*() {
      const pool = yield* Pool
      const started = yield* Deferred.make<void>()
      const fiber = yield* Effect.scopedWith((scope) =>
        Effect.andThen(Deferred.succeed(started, undefined), pool.connect(request(), scope))
      ).pipe(Effect.forkChild)
      yield* Deferred.await(started)
      yield* Effect.yieldNow
      assert.deepStrictEqual(yield* members, { [a.address]: "HEALTHY 1" }, "counted from the start of the dial")
      yield* Fiber.interrupt(fiber)
      assert.deepStrictEqual(yield* members, { [a.address]: "HEALTHY 0" })
    }).pipe(Effect.provide(layer))
  })

  it.effect("failed dials count toward the backend's unhealthy threshold, and only reaching it turns it UNHEALTHY", () => {
    const { layer } = world([a], { [a.address]: "refused" }, { unhealthyThreshold: 3 })
    return Effect.gen(function*() {
      const pool = yield* Pool
      const failOnce = Effect.exit(Effect.scopedWith((scope) => pool.connect(request(0), scope)))
      yield* failOnce
      yield* failOnce
      assert.strictEqual((yield* members)[a.address], "HEALTHY 0", "two failures are below the threshold of three")
      yield* failOnce
      assert.strictEqual((yield* members)[a.address], "UNHEALTHY 0", "the third failed dial reaches it")
    }).pipe(Effect.provide(layer))
  })

  it.effect("a dial that fails for lack of a local resource ends the connection at once and never counts against the backend", () => {
    const { dialled, layer } = world([a, b], { [a.address]: "local", [b.address]: "local" }, { unhealthyThreshold: 1 })
    return Effect.gen(function*() {
      const pool = yield* Pool
      for (let i = 0; i < 5; i++) {
        dialled.length = 0
        const exit = yield* Effect.exit(Effect.scopedWith((scope) => pool.connect(request(3), scope)))
        const error = Exit.isFailure(exit) ? exit.cause.reasons[0] : undefined
        assert.isTrue(error?._tag === "Fail" && error.error._tag === "LocalResource")
        assert.strictEqual(dialled.length, 1, "no retry: another backend would fail the same way")
      }
      assert.deepStrictEqual(yield* members, { [a.address]: "HEALTHY 0", [b.address]: "HEALTHY 0" })
    }).pipe(Effect.provide(layer))
  })

  it.effect("with no eligible backend the connection fails with NoBackend, dialling nothing", () => {
    const { dialled, layer } = world([], {})
    return Effect.gen(function*() {
      const pool = yield* Pool
      const exit = yield* Effect.exit(Effect.scopedWith((scope) => pool.connect(request(), scope)))
      const error = Exit.isFailure(exit) ? exit.cause.reasons[0] : undefined
      assert.isTrue(error?._tag === "Fail" && error.error._tag === "NoBackend")
      assert.deepStrictEqual(dialled, [])
    }).pipe(Effect.provide(layer))
  })

  it.effect("a commit updates the pool in place: members that stay keep their state and counts", () => {
    const { layer } = world([a, b], { [b.address]: "refused" }, { unhealthyThreshold: 1 })
    return Effect.gen(function*() {
      const pool = yield* Pool
      const scope = yield* Scope.make()
      // Hold a connection on a, and make b UNHEALTHY through a failed dial.
      while ((yield* members)[b.address] !== "UNHEALTHY 0") {
        yield* pool.connect(request(), scope)
      }
      const held = (yield* members)[a.address]
      const next = Config.make({ backends: [a, b, c] })
      const prepared = yield* pool.prepare(Config.defaultPool(next))
      assert.strictEqual((yield* pool.registry.all).length, 2, "nothing changes before the commit")
      const update = yield* pool.commit(prepared)
      assert.deepStrictEqual(update.added, [c.address])
      const after = yield* members
      assert.strictEqual(after[a.address], held)
      assert.strictEqual(after[b.address], "UNHEALTHY 0")
      assert.strictEqual(after[c.address], "HEALTHY 0")
      yield* Scope.close(scope, Exit.void)
    }).pipe(Effect.provide(layer))
  })
})
