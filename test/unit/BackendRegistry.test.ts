import { assert, describe, it } from "@effect/vitest"
import { Duration, Effect, Fiber, Layer, Logger, Metric, Option, Stream } from "effect"
import { TestClock } from "effect/testing"
import type { Backend } from "../../src/domain/Config.ts"
import * as BackendRegistryLive from "../../src/layers/BackendRegistryLive.ts"
import * as MetricsLive from "../../src/layers/MetricsLive.ts"
import { BackendRegistry, type BackendStatus, type RegistryChange } from "../../src/services/BackendRegistry.ts"
import { Metrics } from "../../src/services/Metrics.ts"
import { backend, connectionClosed, connectionOpened, poolSettings, registryOf, registryWith, setState } from "./fixtures.ts"

const a = backend("10.0.0.1", 80)
const b = backend("10.0.0.2", 80, 2)
const c = backend("10.0.0.3", 8080)
const d = backend("10.0.0.4", 80)
const spare: Backend = { ...backend("10.0.1.1", 80), backup: true }
const spare2: Backend = { ...backend("10.0.1.2", 80), backup: true }
/** Thresholds that tell apart which one applies: 3 failures to go down, 2 successes to come back. */
const Registry = () => registryOf([a, b, c], { unhealthyThreshold: 3, healthyThreshold: 2 })

const addresses = (statuses: ReadonlyArray<BackendStatus>) => statuses.map((s) => s.backend.address)
const describeChange = (change: RegistryChange) =>
  change._tag === "StateChanged" ? `${change._tag} ${change.backend.address} ${change.state}` : `${change._tag} ${change.backend.address}`

const statusOf = (address: string) =>
  Effect.gen(function*() {
    const registry = yield* BackendRegistry
    const status = (yield* registry.all).find((s) => s.backend.address === address)
    if (status === undefined) return assert.fail(`no backend ${address}`)
    return status
  })
const activeOf = (address: string) => Effect.map(statusOf(address), (status) => status.activeConnections)
const stateOf = (address: string) => Effect.map(statusOf(address), (status) => status.state)
const eligible = BackendRegistry.useSync((registry) => addresses(registry.selection().eligible))

describe("BackendRegistryLive", () => {
  it.effect("holds every backend in the order given, HEALTHY, idle and eligible", () =>
    Effect.gen(function*() {
      const registry = yield* BackendRegistry
      const all = yield* registry.all
      assert.deepStrictEqual(all.map((s) => s.backend), [a, b, c])
      assert.isTrue(all.every((s) => s.state === "HEALTHY" && s.activeConnections === 0 && s.eligible && s.member))
      assert.deepStrictEqual(yield* eligible, [a.address, b.address, c.address])
      assert.deepStrictEqual(all.map((s) => s.weight), [1, 2, 1])
    }).pipe(Effect.provide(Registry())))

  it.effect("report applies the thresholds: a state changes only on the threshold's result", () =>
    Effect.gen(function*() {
      const registry = yield* BackendRegistry
      yield* registry.report(b.address, false)
      yield* registry.report(b.address, false)
      assert.strictEqual(yield* stateOf(b.address), "HEALTHY")
      yield* registry.report(b.address, false)
      assert.strictEqual(yield* stateOf(b.address), "UNHEALTHY")
      yield* registry.report(b.address, false) // agrees with the state: nothing changes
      yield* registry.report(b.address, true)
      assert.strictEqual(yield* stateOf(b.address), "UNHEALTHY")
      yield* registry.report(b.address, true)
      assert.strictEqual(yield* stateOf(b.address), "HEALTHY")
      // a success in between starts the failures over
      yield* registry.report(a.address, false)
      yield* registry.report(a.address, false)
      yield* registry.report(a.address, true)
      yield* registry.report(a.address, false)
      yield* registry.report(a.address, false)
      assert.strictEqual(yield* stateOf(a.address), "HEALTHY")
    }).pipe(Effect.provide(Registry())))

  it.effect("report on an unknown address changes nothing", () =>
    Effect.gen(function*() {
      const registry = yield* BackendRegistry
      for (let i = 0; i < 5; i++) {
        yield* registry.report("10.9.9.9:80", false)
        yield* registry.report("10.0.0.1:81", false)
      }
      assert.strictEqual((yield* registry.all).length, 3)
      assert.deepStrictEqual(yield* eligible, [a.address, b.address, c.address])
    }).pipe(Effect.provide(Registry())))

  it.effect("the eligible set follows the states and keeps the order", () =>
    Effect.gen(function*() {
      const registry = yield* BackendRegistry
      yield* setState(a.address, "UNHEALTHY")
      assert.deepStrictEqual(yield* eligible, [b.address, c.address])
      yield* setState(c.address, "UNHEALTHY")
      assert.deepStrictEqual(yield* eligible, [b.address])
      yield* setState(b.address, "UNHEALTHY")
      assert.deepStrictEqual(yield* eligible, [])
      yield* setState(c.address, "HEALTHY")
      yield* setState(a.address, "HEALTHY")
      assert.deepStrictEqual(yield* eligible, [a.address, c.address])
      // `all` still lists every backend, in order, with its state
      const all = yield* registry.all
      assert.deepStrictEqual(all.map((s) => `${s.backend.address} ${s.state} ${s.eligible}`), [
        `${a.address} HEALTHY true`,
        `${b.address} UNHEALTHY false`,
        `${c.address} HEALTHY true`
      ])
    }).pipe(Effect.provide(Registry())))

  it.effect("counts active connections per backend; a lease is released once", () =>
    Effect.gen(function*() {
      const registry = yield* BackendRegistry
      for (let i = 0; i < 3; i++) yield* connectionOpened(a.address)
      yield* connectionOpened(b.address)
      assert.strictEqual(yield* activeOf(a.address), 3)
      assert.strictEqual(yield* activeOf(b.address), 1)
      assert.strictEqual(yield* activeOf(c.address), 0)
      yield* connectionClosed(a.address)
      yield* connectionClosed(b.address)
      assert.strictEqual(yield* activeOf(a.address), 2)
      assert.strictEqual(yield* activeOf(b.address), 0)
      const lease = registry.acquire(c.address)
      if (lease === undefined) return assert.fail("no lease")
      assert.strictEqual(lease.backend.backend, c)
      lease.release()
      lease.release()
      assert.strictEqual(yield* activeOf(c.address), 0)
    }).pipe(Effect.provide(Registry())))

  it.effect("the eligible set shows active connections too, also across state changes", () =>
    Effect.gen(function*() {
      const registry = yield* BackendRegistry
      yield* connectionOpened(c.address)
      yield* connectionOpened(c.address)
      yield* setState(c.address, "UNHEALTHY")
      yield* setState(c.address, "HEALTHY")
      const status = registry.selection().eligible.find((s) => s.backend.address === c.address)
      assert.strictEqual(status?.activeConnections, 2)
    }).pipe(Effect.provide(Registry())))

  it.effect("no lease on an unknown address", () =>
    Effect.gen(function*() {
      const registry = yield* BackendRegistry
      assert.isUndefined(registry.acquire("10.9.9.9:80"))
      const all = yield* registry.all
      assert.deepStrictEqual(all.map((s) => s.activeConnections), [0, 0, 0])
      assert.strictEqual(all.length, 3)
    }).pipe(Effect.provide(Registry())))

  it.effect("a backend removed with connections open keeps its count, and comes back with it", () =>
    Effect.gen(function*() {
      const registry = yield* BackendRegistry
      for (let i = 0; i < 3; i++) yield* connectionOpened(b.address)
      const removed = yield* registry.update([a, c])
      assert.deepStrictEqual(removed.removed, [b.address])
      assert.deepStrictEqual(addresses(yield* registry.all), [a.address, c.address])
      assert.deepStrictEqual(yield* eligible, [a.address, c.address])
      const added = yield* registry.update([a, b, c])
      assert.deepStrictEqual(added.added, [b.address])
      assert.strictEqual(yield* activeOf(b.address), 3)
      for (let i = 0; i < 3; i++) yield* connectionClosed(b.address)
      assert.strictEqual(yield* activeOf(b.address), 0)
    }).pipe(Effect.provide(Registry())))

  it.effect("a record that left is forgotten once its last connection closes: a new one starts afresh", () =>
    Effect.gen(function*() {
      const registry = yield* BackendRegistry
      yield* connectionOpened(b.address)
      yield* setState(b.address, "UNHEALTHY")
      yield* registry.update([a, c])
      yield* connectionClosed(b.address)
      yield* registry.update([a, b, c])
      assert.strictEqual(yield* activeOf(b.address), 0)
      assert.strictEqual(yield* stateOf(b.address), "HEALTHY")
    }).pipe(Effect.provide(Registry())))

  it.effect("the generation changes with membership and weights, not with health", () =>
    Effect.gen(function*() {
      const registry = yield* BackendRegistry
      const generation = Effect.sync(() => registry.selection().generation)
      const start = yield* generation
      yield* setState(a.address, "UNHEALTHY")
      yield* connectionOpened(b.address)
      assert.strictEqual(yield* generation, start)
      yield* registry.update([a, b, c])
      assert.strictEqual(yield* generation, start)
      yield* registry.update([a, { ...b, weight: 5 }, c])
      assert.strictEqual(yield* generation, start + 1)
      yield* registry.update([a, c])
      assert.strictEqual(yield* generation, start + 2)
    }).pipe(Effect.provide(Registry())))

  it.effect("subscribe delivers each state change once, in order", () =>
    Effect.gen(function*() {
      const registry = yield* BackendRegistry
      const changes = yield* registry.subscribe
      yield* setState(a.address, "UNHEALTHY")
      yield* registry.report(a.address, false) // no change: no event
      yield* registry.report("10.9.9.9:80", false) // unknown: no event
      yield* connectionOpened(b.address) // not a registry change
      yield* setState(b.address, "UNHEALTHY")
      yield* setState(a.address, "HEALTHY")
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
      yield* setState(c.address, "UNHEALTHY") // before anyone subscribed
      const first = yield* registry.subscribe
      const second = yield* registry.subscribe
      yield* setState(c.address, "HEALTHY")
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
      yield* setState(b.address, "UNHEALTHY")
      const got = yield* Fiber.join(next)
      assert.deepStrictEqual(got.map(describeChange), [`StateChanged ${b.address} UNHEALTHY`])
    }).pipe(Effect.provide(Registry())))
})

describe("BackendRegistryLive metrics", () => {
  /** A registry of `backends` and the metrics service it feeds, over one metric registry. */
  const withMetrics = (backends: ReadonlyArray<Backend>) =>
    BackendRegistryLive.layer(backends).pipe(
      Layer.provideMerge(Layer.mergeAll(poolSettings(backends), MetricsLive.layer)),
      Layer.provide(Layer.sync(Metric.MetricRegistry, () => new Map()))
    )
  const snapshot = Metrics.use((metrics) => metrics.snapshot)
  const series = (address: string) => `tcp_proxy_backend_connections_active{backend="${address}"}`

  it.effect("the gauges read the record; a backend's series go once it left and its last connection closed", () =>
    Effect.gen(function*() {
      const registry = yield* BackendRegistry
      yield* connectionOpened(b.address)
      yield* connectionOpened(b.address)
      assert.include(yield* snapshot, `${series(b.address)}: 2`)
      assert.include(yield* snapshot, `tcp_proxy_backend_weight{backend="${b.address}"}: 2`)
      yield* setState(b.address, "UNHEALTHY")
      assert.include(yield* snapshot, `tcp_proxy_backend_healthy{backend="${b.address}"}: 0`)
      yield* registry.update([a])
      assert.include(yield* snapshot, `${series(b.address)}: 2`, "kept while connections are open")
      yield* connectionClosed(b.address)
      assert.include(yield* snapshot, `${series(b.address)}: 1`)
      yield* connectionClosed(b.address)
      const after = yield* snapshot
      assert.notInclude(after, `backend="${b.address}"`)
      assert.include(after, `${series(a.address)}: 0`)
    }).pipe(Effect.provide(withMetrics([a, b]))))
})

describe("BackendRegistryLive: operating the backends", () => {
  it.effect("drain and maintenance take a backend out of service, ready puts it back; each is logged once", () =>
    Effect.gen(function*() {
      const registry = yield* BackendRegistry
      const logs: Array<string> = []
      const logged = Logger.layer([Logger.make(({ message }) => logs.push(String(message)))])
      const drained = yield* registry.setAdmin(a.address, "drain").pipe(Effect.provide(logged))
      assert.strictEqual(drained?.admin, "drain")
      assert.deepStrictEqual(yield* eligible, [b.address, c.address])
      yield* registry.setAdmin(c.address, "maintenance").pipe(Effect.provide(logged))
      assert.deepStrictEqual(yield* eligible, [b.address])
      yield* registry.setAdmin(a.address, "ready").pipe(Effect.provide(logged))
      yield* registry.setAdmin(a.address, "ready").pipe(Effect.provide(logged))
      assert.deepStrictEqual(yield* eligible, [a.address, b.address])
      assert.deepStrictEqual(logs, [`backend ${a.address} admin drain`, `backend ${c.address} admin maintenance`, `backend ${a.address} admin ready`])
      assert.isUndefined(yield* registry.setAdmin("10.9.9.9:1", "drain"))
    }).pipe(Effect.provide(Registry())))

  it.effect("an admin state holds across updates while the backend stays, and is gone when it leaves and comes back", () =>
    Effect.gen(function*() {
      const registry = yield* BackendRegistry
      yield* registry.setAdmin(b.address, "maintenance")
      yield* registry.update([a, b, c])
      assert.strictEqual((yield* statusOf(b.address)).admin, "maintenance")
      yield* registry.update([a, c])
      yield* registry.update([a, b, c])
      assert.strictEqual((yield* statusOf(b.address)).admin, "ready")
    }).pipe(Effect.provide(Registry())))

  it.effect("an operator's weight is in force until resetWeights (a reload); it moves the generation", () =>
    Effect.gen(function*() {
      const registry = yield* BackendRegistry
      const before = registry.selection().generation
      yield* registry.setWeight(a.address, 5)
      assert.strictEqual((yield* statusOf(a.address)).weight, 5)
      assert.strictEqual((yield* statusOf(a.address)).backend.weight, 5, "the hash ring reads it too")
      assert.isAbove(registry.selection().generation, before)
      yield* registry.update([a, b, c])
      assert.strictEqual((yield* statusOf(a.address)).weight, 5, "kept by an update (a DNS refresh)")
      yield* registry.resetWeights
      assert.strictEqual((yield* statusOf(a.address)).weight, 1)
      assert.isUndefined(yield* registry.setWeight("10.9.9.9:1", 2))
    }).pipe(Effect.provide(Registry())))

  it.effect("backups are in service only while no other member is, and hand back when one is", () =>
    Effect.gen(function*() {
      const registry = yield* BackendRegistry
      assert.deepStrictEqual(yield* eligible, [a.address])
      yield* setState(a.address, "UNHEALTHY")
      assert.deepStrictEqual(yield* eligible, [spare.address, spare2.address])
      yield* setState(spare.address, "UNHEALTHY")
      assert.deepStrictEqual(yield* eligible, [spare2.address])
      yield* setState(a.address, "HEALTHY")
      assert.deepStrictEqual(yield* eligible, [a.address])
      yield* registry.setAdmin(a.address, "drain")
      assert.deepStrictEqual(yield* eligible, [spare2.address], "a drained primary is not in service either")
    }).pipe(Effect.provide(registryOf([a, spare, spare2], { unhealthyThreshold: 1, healthyThreshold: 1 }))))

  it.effect("slow start: a backend that turns HEALTHY or joins ramps its weight up linearly; the ones there at start do not", () =>
    Effect.gen(function*() {
      const registry = yield* BackendRegistry
      assert.strictEqual((yield* statusOf(b.address)).weight, 2, "no ramp at start")
      yield* setState(b.address, "UNHEALTHY")
      yield* setState(b.address, "HEALTHY")
      const weight = Effect.map(statusOf(b.address), (status) => status.weight)
      assert.strictEqual(yield* weight, 2 * 0.01, "near zero, never zero")
      yield* TestClock.adjust(Duration.seconds(25))
      assert.closeTo(yield* weight, 2 * 0.25, 1e-9)
      yield* TestClock.adjust(Duration.seconds(50))
      assert.closeTo(yield* weight, 2 * 0.75, 1e-9)
      yield* TestClock.adjust(Duration.seconds(25))
      assert.strictEqual(yield* weight, 2)
      // A new member ramps too.
      yield* registry.update([a, b, c, d])
      assert.strictEqual((yield* statusOf(d.address)).weight, 0.01)
      yield* TestClock.adjust(Duration.seconds(50))
      assert.closeTo((yield* statusOf(d.address)).weight, 0.5, 1e-9)
    }).pipe(Effect.provide(registryWith([a, b, c], { slowStart: Option.some(Duration.seconds(100)) }))))

  it.effect("whenDown: called once when the backend turns UNHEALTHY while the lease is held; not after release or cancel", () =>
    Effect.gen(function*() {
      const registry = yield* BackendRegistry
      const called: Array<string> = []
      const held = registry.acquire(a.address)!
      held.whenDown(() => called.push("held"))
      const released = registry.acquire(a.address)!
      released.whenDown(() => called.push("released"))
      released.release()
      const cancelled = registry.acquire(a.address)!
      cancelled.whenDown(() => called.push("cancelled"))()
      yield* setState(a.address, "UNHEALTHY")
      yield* setState(a.address, "HEALTHY")
      yield* setState(a.address, "UNHEALTHY")
      assert.deepStrictEqual(called, ["held"])
    }).pipe(Effect.provide(Registry())))
})
