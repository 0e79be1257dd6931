import { assert, describe, it } from "@effect/vitest"
import { Duration, Effect, Layer, Result, SubscriptionRef } from "effect"
import { TestClock } from "effect/testing"
import * as Config from "../../src/domain/Config.ts"
import * as BackendRegistryLive from "../../src/layers/BackendRegistryLive.ts"
import * as DiscoveryLive from "../../src/layers/DiscoveryLive.ts"
import * as SettingsLive from "../../src/layers/SettingsLive.ts"
import { BackendRegistry } from "../../src/services/BackendRegistry.ts"
import { Discovery } from "../../src/services/Discovery.ts"
import { PoolSettings } from "../../src/services/Pool.ts"
import { ResolveError, Resolver } from "../../src/services/Resolver.ts"
import { freshMetrics, poolSettings, setState } from "./fixtures.ts"

const backend = (text: string, weight = 1) => Result.getOrThrow(Config.backend(text, weight))

/** A resolver whose answers the test scripts: an array of addresses, or `undefined` for a failure. */
const scripted = () => {
  const answers = new Map<string, ReadonlyArray<string> | undefined>()
  const calls: Array<string> = []
  const layer = Layer.succeed(Resolver)({
    resolve: (host) =>
      Effect.suspend(() => {
        calls.push(host)
        const answer = answers.get(host)
        return answer === undefined
          ? Effect.fail(new ResolveError({ host, cause: new Error("SERVFAIL") }))
          : Effect.succeed(answer)
      })
  })
  return { answers, calls, layer }
}

const world = (backends: ReadonlyArray<Config.Backend>, resolver: Layer.Layer<Resolver>) =>
  DiscoveryLive.layer.pipe(
    Layer.provideMerge(BackendRegistryLive.layer([])),
    Layer.provideMerge(Layer.mergeAll(
      poolSettings(backends),
      freshMetrics,
      SettingsLive.layer(Config.make({ backends, dnsRefresh: Duration.seconds(30) })),
      resolver
    ))
  )

const listing = Effect.gen(function*() {
  const registry = yield* BackendRegistry
  return (yield* registry.all).map(({ backend: b }) => `${b.address} w${b.weight}${b.name === undefined ? "" : ` <${b.name}>`}`)
})

describe("DiscoveryLive", () => {
  it.effect("expands a name into one backend per address, sharing the weight; IPs stay as they are", () => {
    const dns = scripted()
    dns.answers.set("echo.svc", ["10.0.0.1", "10.0.0.2", "fd00::3"])
    return Effect.gen(function*() {
      assert.deepStrictEqual(yield* listing, [
        "192.0.2.9:80 w1",
        "10.0.0.1:9000 w2 <echo.svc:9000>",
        "10.0.0.2:9000 w2 <echo.svc:9000>",
        "[fd00::3]:9000 w2 <echo.svc:9000>"
      ])
      assert.deepStrictEqual(dns.calls, ["echo.svc"])
    }).pipe(Effect.provide(world([backend("192.0.2.9:80"), backend("echo.svc:9000", 2)], dns.layer)))
  })

  it.effect("re-resolves every dns-refresh: addresses added and removed as the answer changes", () => {
    const dns = scripted()
    dns.answers.set("echo.svc", ["10.0.0.1", "10.0.0.2"])
    return Effect.gen(function*() {
      const registry = yield* BackendRegistry
      yield* setState("10.0.0.1:9000", "UNHEALTHY")
      dns.answers.set("echo.svc", ["10.0.0.1", "10.0.0.3"])
      yield* TestClock.adjust("29 seconds")
      assert.deepStrictEqual((yield* listing).length, 2)
      assert.include(yield* listing, "10.0.0.2:9000 w1 <echo.svc:9000>", "not before dns-refresh")
      yield* TestClock.adjust("1 second")
      assert.deepStrictEqual(yield* listing, ["10.0.0.1:9000 w1 <echo.svc:9000>", "10.0.0.3:9000 w1 <echo.svc:9000>"])
      // The address that stayed kept its state.
      const kept = (yield* registry.all).find((status) => status.backend.address === "10.0.0.1:9000")
      assert.strictEqual(kept?.state, "UNHEALTHY")
    }).pipe(Effect.provide(world([backend("echo.svc:9000")], dns.layer)))
  })

  it.effect("an answer that fails keeps the last good set", () => {
    const dns = scripted()
    dns.answers.set("echo.svc", ["10.0.0.1"])
    return Effect.gen(function*() {
      dns.answers.delete("echo.svc")
      yield* TestClock.adjust("30 seconds")
      assert.deepStrictEqual(yield* listing, ["10.0.0.1:9000 w1 <echo.svc:9000>"])
      assert.strictEqual(dns.calls.length, 2)
      dns.answers.set("echo.svc", ["10.0.0.4"])
      yield* TestClock.adjust("30 seconds")
      assert.deepStrictEqual(yield* listing, ["10.0.0.4:9000 w1 <echo.svc:9000>"])
    }).pipe(Effect.provide(world([backend("echo.svc:9000")], dns.layer)))
  })

  it.effect("a name that never resolved gives no backend, and joins when it does", () => {
    const dns = scripted()
    return Effect.gen(function*() {
      assert.deepStrictEqual(yield* listing, [])
      dns.answers.set("late.svc", ["10.0.0.7"])
      yield* TestClock.adjust("30 seconds")
      assert.deepStrictEqual(yield* listing, ["10.0.0.7:80 w1 <late.svc:80>"])
    }).pipe(Effect.provide(world([backend("late.svc:80")], dns.layer)))
  })

  it.effect("a reload resolves the new backends first and applies them at once: names dropped, weights changed", () => {
    const dns = scripted()
    dns.answers.set("a.svc", ["10.0.1.1"])
    dns.answers.set("b.svc", ["10.0.2.1", "10.0.2.2"])
    return Effect.gen(function*() {
      const discovery = yield* Discovery
      const next = [backend("b.svc:80", 5)]
      const resolved = yield* discovery.resolve(next)
      assert.deepStrictEqual(yield* listing, ["10.0.1.1:80 w1 <a.svc:80>", "10.0.2.1:80 w1 <b.svc:80>", "10.0.2.2:80 w1 <b.svc:80>"])
      const update = yield* discovery.apply(resolved)
      assert.deepStrictEqual(update.removed, ["10.0.1.1:80"])
      assert.deepStrictEqual(update.reweighted, ["10.0.2.1:80", "10.0.2.2:80"])
      assert.deepStrictEqual(yield* listing, ["10.0.2.1:80 w5 <b.svc:80>", "10.0.2.2:80 w5 <b.svc:80>"])
      // the periodic refresh follows the pool's new settings
      yield* SubscriptionRef.update(yield* PoolSettings, (pool) => ({ ...pool, backends: next }))
      dns.answers.set("a.svc", ["10.0.1.9"])
      dns.answers.set("b.svc", ["10.0.2.3"])
      yield* TestClock.adjust("30 seconds")
      assert.deepStrictEqual(yield* listing, ["10.0.2.3:80 w5 <b.svc:80>"])
    }).pipe(Effect.provide(world([backend("a.svc:80"), backend("b.svc:80")], dns.layer)))
  })

  it.effect("without names, nothing is resolved, ever", () => {
    const dns = scripted()
    return Effect.gen(function*() {
      yield* TestClock.adjust("5 minutes")
      assert.deepStrictEqual(dns.calls, [])
      assert.deepStrictEqual(yield* listing, ["192.0.2.1:80 w1"])
    }).pipe(Effect.provide(world([backend("192.0.2.1:80")], dns.layer)))
  })
})
