import { assert, describe, it } from "@effect/vitest"
import { Effect, Fiber, Stream } from "effect"
import type { Backend } from "../../src/domain/Config.ts"
import * as BackendRegistryLive from "../../src/layers/BackendRegistryLive.ts"
import { BackendRegistry, type BackendStatus, type RegistryChange } from "../../src/services/BackendRegistry.ts"

const backend = (host: string, port: number, weight = 1): Backend => ({ address: `${host}:${port}`, host, port, weight })

const a = backend("10.0.0.1", 80)
const b = backend("10.0.0.2", 80, 2)
const c = backend("10.0.0.3", 8080)
const Registry = () => BackendRegistryLive.layer([a, b, c])

const addresses = (statuses: ReadonlyArray<BackendStatus>) => statuses.map((s) => s.backend.address)
const describeChange = (change: RegistryChange) =>
  change._tag === "StateChanged" ? `${change._tag} ${change.backend.address} ${change.state}` : `${change._tag} ${change.backend.address}`

const activeOf = (address: string) =>
  Effect.gen(function*() {
    const registry = yield* BackendRegistry
    const status = (yield* registry.all).find((s) => s.backend.address === address)
    if (status === undefined) return assert.fail(`no backend ${address}`)
    return status.activeConnections
  })

describe("BackendRegistryLive", () => {
  it.effect("holds every backend in the order given, HEALTHY and idle", () =>
    Effect.gen(function*() {
      const registry = yield* BackendRegistry
      const all = yield* registry.all
      assert.deepStrictEqual(all.map((s) => s.backend), [a, b, c])
      assert.isTrue(all.every((s) => s.state === "HEALTHY" && s.activeConnections === 0))
      assert.deepStrictEqual(addresses(yield* registry.healthy), [a.address, b.address, c.address])
    }).pipe(Effect.provide(Registry())))

  it.effect("setState returns true only when the state changes", () =>
    Effect.gen(function*() {
      const registry = yield* BackendRegistry
      assert.isTrue(yield* registry.setState(b.address, "UNHEALTHY"))
      assert.isFalse(yield* registry.setState(b.address, "UNHEALTHY"))
      assert.isTrue(yield* registry.setState(b.address, "HEALTHY"))
      assert.isFalse(yield* registry.setState(b.address, "HEALTHY"))
      assert.isFalse(yield* registry.setState(a.address, "HEALTHY"))
    }).pipe(Effect.provide(Registry())))

  it.effect("setState on an unknown address changes nothing", () =>
    Effect.gen(function*() {
      const registry = yield* BackendRegistry
      assert.isFalse(yield* registry.setState("10.9.9.9:80", "UNHEALTHY"))
      assert.isFalse(yield* registry.setState("10.0.0.1:81", "UNHEALTHY"))
      assert.strictEqual((yield* registry.all).length, 3)
      assert.strictEqual((yield* registry.healthy).length, 3)
    }).pipe(Effect.provide(Registry())))

  it.effect("the healthy set follows the states and keeps the order", () =>
    Effect.gen(function*() {
      const registry = yield* BackendRegistry
      yield* registry.setState(a.address, "UNHEALTHY")
      assert.deepStrictEqual(addresses(yield* registry.healthy), [b.address, c.address])
      yield* registry.setState(c.address, "UNHEALTHY")
      assert.deepStrictEqual(addresses(yield* registry.healthy), [b.address])
      yield* registry.setState(b.address, "UNHEALTHY")
      assert.deepStrictEqual(addresses(yield* registry.healthy), [])
      yield* registry.setState(c.address, "HEALTHY")
      yield* registry.setState(a.address, "HEALTHY")
      assert.deepStrictEqual(addresses(yield* registry.healthy), [a.address, c.address])
      // `all` still lists every backend, in order, with its state
      const all = yield* registry.all
      assert.deepStrictEqual(all.map((s) => `${s.backend.address} ${s.state}`), [
        `${a.address} HEALTHY`,
        `${b.address} UNHEALTHY`,
        `${c.address} HEALTHY`
      ])
    }).pipe(Effect.provide(Registry())))

  it.effect("counts active connections per backend", () =>
    Effect.gen(function*() {
      const registry = yield* BackendRegistry
      for (let i = 0; i < 3; i++) yield* registry.connectionOpened(a.address)
      yield* registry.connectionOpened(b.address)
      assert.strictEqual(yield* activeOf(a.address), 3)
      assert.strictEqual(yield* activeOf(b.address), 1)
      assert.strictEqual(yield* activeOf(c.address), 0)
      yield* registry.connectionClosed(a.address)
      yield* registry.connectionClosed(b.address)
      assert.strictEqual(yield* activeOf(a.address), 2)
      assert.strictEqual(yield* activeOf(b.address), 0)
    }).pipe(Effect.provide(Registry())))

  it.effect("the healthy set shows active connections too, also across state changes", () =>
    Effect.gen(function*() {
      const registry = yield* BackendRegistry
      yield* registry.connectionOpened(c.address)
      yield* registry.connectionOpened(c.address)
      yield* registry.setState(c.address, "UNHEALTHY")
      yield* registry.setState(c.address, "HEALTHY")
      const status = (yield* registry.healthy).find((s) => s.backend.address === c.address)
      assert.strictEqual(status?.activeConnections, 2)
    }).pipe(Effect.provide(Registry())))

  it.effect("connection counts on an unknown address are ignored", () =>
    Effect.gen(function*() {
      const registry = yield* BackendRegistry
      yield* registry.connectionOpened("10.9.9.9:80")
      yield* registry.connectionClosed("10.9.9.9:80")
      const all = yield* registry.all
      assert.deepStrictEqual(all.map((s) => s.activeConnections), [0, 0, 0])
      assert.strictEqual(all.length, 3)
    }).pipe(Effect.provide(Registry())))

  it.effect("subscribe delivers each state change once, in order", () =>
    Effect.gen(function*() {
      const registry = yield* BackendRegistry
      const changes = yield* registry.subscribe
      yield* registry.setState(a.address, "UNHEALTHY")
      yield* registry.setState(a.address, "UNHEALTHY") // no change: no event
      yield* registry.setState("10.9.9.9:80", "UNHEALTHY") // unknown: no event
      yield* registry.connectionOpened(b.address) // not a registry change
      yield* registry.setState(b.address, "UNHEALTHY")
      yield* registry.setState(a.address, "HEALTHY")
      const got = yield* changes.pipe(Stream.take(3), Stream.runCollect)
      assert.deepStrictEqual(got.map(describeChange), [
        `StateChanged ${a.address} UNHEALTHY`,
        `StateChanged ${b.address} UNHEALTHY`,
        `StateChanged ${a.address} HEALTHY`
      ])
      const first = got[0]
      assert.isTrue(first !== undefined && first._tag === "StateChanged" && first.backend === a)
    }).pipe(Effect.provide(Registry())))

  it.effect("subscribe delivers only changes made after it, to every subscriber", () =>
    Effect.gen(function*() {
      const registry = yield* BackendRegistry
      yield* registry.setState(c.address, "UNHEALTHY") // before anyone subscribed
      const first = yield* registry.subscribe
      const second = yield* registry.subscribe
      yield* registry.setState(c.address, "HEALTHY")
      const fromFirst = yield* first.pipe(Stream.take(1), Stream.runCollect)
      const fromSecond = yield* second.pipe(Stream.take(1), Stream.runCollect)
      assert.deepStrictEqual(fromFirst.map(describeChange), [`StateChanged ${c.address} HEALTHY`])
      assert.deepStrictEqual(fromSecond.map(describeChange), [`StateChanged ${c.address} HEALTHY`])
    }).pipe(Effect.provide(Registry())))

  it.effect("a subscriber that is already waiting receives the change", () =>
    Effect.gen(function*() {
      const registry = yield* BackendRegistry
      const changes = yield* registry.subscribe
      const next = yield* changes.pipe(Stream.take(1), Stream.runCollect, Effect.forkChild)
      yield* Effect.yieldNow
      yield* registry.setState(b.address, "UNHEALTHY")
      const got = yield* Fiber.join(next)
      assert.deepStrictEqual(got.map(describeChange), [`StateChanged ${b.address} UNHEALTHY`])
    }).pipe(Effect.provide(Registry())))
})
