import { assert, describe, it } from "@effect/vitest"
import { Effect, Layer, Metric } from "effect"
import * as StatsDomain from "../../src/domain/Stats.ts"
import { TestClock } from "effect/testing"
import * as MetricsLive from "../../src/layers/MetricsLive.ts"
import * as StatsSampler from "../../src/layers/StatsSampler.ts"
import { Metrics } from "../../src/services/Metrics.ts"
import { Routes } from "../../src/services/Routes.ts"
import { Draining } from "../../src/services/Shutdown.ts"
import { Stats } from "../../src/services/Stats.ts"

const totals = (connections: number, bytesIn = 0): StatsDomain.TotalsReading => ({
  connections,
  active: 0,
  bytesIn,
  bytesOut: 0,
  errors: 0
})

const backend = (connections: number, state: StatsDomain.BackendReading["state"] = "HEALTHY"): StatsDomain.BackendReading => ({
  connections,
  active: connections,
  bytesIn: 0,
  bytesOut: 0,
  errors: 0,
  state
})

const sample = (at: number, total: number, backends: Record<string, StatsDomain.BackendReading> = {}): StatsDomain.Sample => ({
  at,
  totals: totals(total, total * 10),
  backends: new Map(Object.entries(backends))
})

describe("Stats ring", () => {
  it("keeps the newest samples up to its capacity, oldest first", () => {
    const ring = new StatsDomain.Ring(3)
    assert.deepStrictEqual(ring.samples(), [])
    for (let i = 1; i <= 5; i++) ring.push(sample(i * 1000, i))
    assert.deepStrictEqual(ring.samples().map((s) => s.at), [3000, 4000, 5000])
    ring.push(sample(6000, 6))
    assert.deepStrictEqual(ring.samples().map((s) => s.at), [4000, 5000, 6000])
  })

  it("holds five minutes of one-second samples", () => {
    const ring = new StatsDomain.Ring(300)
    for (let i = 0; i < 1000; i++) ring.push(sample(i * 1000, i))
    const held = ring.samples()
    assert.strictEqual(held.length, 300)
    assert.strictEqual(held[0]!.at, 700_000)
    assert.strictEqual(held[299]!.at, 999_000)
  })
})

describe("Stats feed", () => {
  it("turns counters into rates per second and keeps active as it is", () => {
    const feed = StatsDomain.feed([sample(0, 0), sample(1000, 5), sample(3000, 9)], 1000)
    assert.deepStrictEqual(feed.time, [0, 1000, 3000])
    assert.deepStrictEqual(feed.totals.connections, [null, 5, 2])
    assert.deepStrictEqual(feed.totals.bytesIn, [null, 50, 20])
    assert.deepStrictEqual(feed.totals.active, [0, 0, 0])
    assert.strictEqual(feed.interval, 1000)
  })

  it("counts a counter that went down as restarted from zero, and leaves gaps where a backend was absent", () => {
    const feed = StatsDomain.feed([
      sample(0, 0, { a: backend(10) }),
      sample(1000, 0, {}),
      sample(2000, 0, { a: backend(2) }),
      sample(3000, 0, { a: backend(1) })
    ], 1000)
    const a = feed.backends[0]!
    assert.strictEqual(a.address, "a")
    assert.deepStrictEqual(a.connections, [null, null, null, 1])
    assert.deepStrictEqual(a.active, [10, null, 2, 1])
    assert.deepStrictEqual(a.healthy, [1, null, 1, 1])
  })

  it("records state changes and lists the newest backends first", () => {
    const feed = StatsDomain.feed([
      sample(0, 0, { old: backend(0) }),
      sample(1000, 0, { old: backend(0, "UNHEALTHY"), fresh: backend(0) }),
      sample(2000, 0, { fresh: backend(0), old: backend(0, "HEALTHY") })
    ], 1000)
    assert.deepStrictEqual(feed.backends.map((b) => b.address), ["fresh", "old"])
    assert.deepStrictEqual(feed.backends[1]!.changes, [{ at: 1000, state: "UNHEALTHY" }, { at: 2000, state: "HEALTHY" }])
    assert.deepStrictEqual(feed.backends[1]!.healthy, [1, 0, 1])
    assert.deepStrictEqual(feed.backends[0]!.changes, [])
  })
})

describe("Stats readSample", () => {
  it.effect("reads the proxy's series out of a registry snapshot, whatever else it holds", () =>
    Effect.gen(function*() {
      const metrics = yield* Metrics
      metrics.trackBackend("10.0.0.1:80", { activeConnections: 2, state: "HEALTHY", weight: 1 })
      for (let i = 0; i < 3; i++) metrics.connectionAccepted()
      metrics.connectionClosed({ bytesIn: 100, bytesOut: 40, durationSeconds: 1, error: "io" })
      metrics.dialed("10.0.0.1:80", 0.01, true)
      metrics.dialed("10.0.0.1:80", 0.01, false)
      metrics.transferred("10.0.0.1:80", 100, 40)
      yield* Metric.update(Metric.counter("someone_elses_total"), 7)
      const snapshot = yield* Metric.snapshot
      const read = StatsDomain.readSample(snapshot, new Map([["10.0.0.1:80", "UNHEALTHY"], ["10.0.0.2:80", "HEALTHY"]]), 42)
      assert.strictEqual(read.at, 42)
      assert.deepStrictEqual(read.totals, { connections: 3, active: 0, bytesIn: 100, bytesOut: 40, errors: 1 })
      assert.deepStrictEqual(read.backends.get("10.0.0.1:80"), {
        connections: 1,
        active: 2,
        bytesIn: 40,
        bytesOut: 100,
        errors: 1,
        state: "UNHEALTHY"
      })
      assert.deepStrictEqual(read.backends.get("10.0.0.2:80"), {
        connections: 0,
        active: 0,
        bytesIn: 0,
        bytesOut: 0,
        errors: 0,
        state: "HEALTHY"
      })
    }).pipe(Effect.provide(MetricsLive.layer.pipe(Layer.provideMerge(Layer.sync(Metric.MetricRegistry, () => new Map()))))))
})

describe("StatsSampler", () => {
  const registry = Layer.sync(Metric.MetricRegistry, () => new Map())
  const services = Layer.mergeAll(
    Layer.mock(Routes, { pools: Effect.succeed([]), direct: () => undefined }),
    Layer.succeed(Draining)({ isDraining: Effect.succeed(false), begin: Effect.void }),
    MetricsLive.layer
  ).pipe(Layer.provideMerge(registry))

  it.effect("samples the registry every second and keeps five minutes", () =>
    Effect.gen(function*() {
      const metrics = yield* Metrics
      const stats = yield* Stats
      assert.deepStrictEqual((yield* stats.feed).time, [0])
      metrics.connectionAccepted()
      metrics.connectionAccepted()
      yield* TestClock.adjust("1 second")
      const feed = yield* stats.feed
      assert.deepStrictEqual(feed.time, [0, 1000])
      assert.deepStrictEqual(feed.totals.connections, [null, 2])
      assert.strictEqual(feed.interval, 1000)
      yield* TestClock.adjust("10 minutes")
      const later = yield* stats.feed
      assert.strictEqual(later.time.length, 300)
      assert.strictEqual(later.time[299], 601_000)
    }).pipe(Effect.provide(StatsSampler.layer.pipe(Layer.provideMerge(services)))))
})
