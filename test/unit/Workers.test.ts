/**
 * The pieces of `--workers` without threads: metrics that add up what
 * workers export, registries that count other workers' connections, and a
 * worker's registry mirroring the control part's over a `ControlLink` double.
 */
import { assert, describe, it } from "@effect/vitest"
import { Effect, Layer, Metric, Option, Stream, SubscriptionRef } from "effect"
import * as Config from "../../src/domain/Config.ts"
import * as ConfigCodec from "../../src/domain/ConfigCodec.ts"
import * as BackendRegistryLive from "../../src/layers/BackendRegistryLive.ts"
import * as MetricsLive from "../../src/layers/MetricsLive.ts"
import { BackendRegistry } from "../../src/services/BackendRegistry.ts"
import { Metrics } from "../../src/services/Metrics.ts"
import { ControlLink, type MemberState } from "../../src/services/Workers.ts"
import { backend, connectionOpened, freshMetrics, poolSettings } from "./fixtures.ts"

const a = backend("10.0.0.1", 80)
const b = backend("10.0.0.2", 80)

/** The series of the metrics' registry whose id is `id`, with `labels`. */
const series = (id: string, labels: Record<string, string> = {}) =>
  Effect.gen(function*() {
    const registry = yield* Metric.MetricRegistry
    const found = Metric.snapshotUnsafe(yield* Effect.context<never>()).find((snapshot) =>
      snapshot.id === id && Object.entries(labels).every(([key, value]) => snapshot.attributes?.[key] === value)
    )
    assert.isDefined(found, `${id} in ${registry.size} series`)
    return found!
  })

const counterValue = (id: string, labels: Record<string, string> = {}) =>
  Effect.map(series(id, labels), (snapshot) => (snapshot.type === "Counter" ? Number(snapshot.state.count) : NaN))

const gaugeValue = (id: string) => Effect.map(series(id), (snapshot) => (snapshot.type === "Gauge" ? Number(snapshot.state.value) : NaN))

const histogramCount = (id: string) =>
  Effect.map(series(id), (snapshot) => (snapshot.type === "Histogram" ? snapshot.state.count : NaN))

/** A metrics service in a registry of its own, with the registry available to the test. */
const metricsAndRegistry = MetricsLive.layer.pipe(Layer.provideMerge(Layer.sync(Metric.MetricRegistry, () => new Map())))

/** What a worker that served `connections` connections and has `open` open would export. */
const workerExport = (connections: number, open: number) =>
  Effect.gen(function*() {
    // A registry of its own, as a worker thread has.
    const worker = MetricsLive.make(yield* Effect.context<never>().pipe(Effect.provide(Layer.sync(Metric.MetricRegistry, () => new Map()))))
    for (let i = 0; i < connections; i++) {
      worker.connectionAccepted()
      worker.connectionClosed({ bytesIn: 10, bytesOut: 20, durationSeconds: 0.5, error: undefined })
    }
    yield* worker.trackConnections(() => open)
    return worker.export()
  }).pipe(Effect.scoped)

describe("Metrics with workers", () => {
  it.effect("readings add what each worker last exported; a worker's open connections leave with it, its counts stay", () =>
    Effect.gen(function*() {
      const metrics = yield* Metrics
      metrics.connectionAccepted()
      yield* metrics.trackConnections(() => 0)
      metrics.absorb(1, yield* workerExport(3, 2))
      metrics.absorb(2, yield* workerExport(4, 1))
      assert.strictEqual(yield* counterValue("tcp_proxy_connections_total"), 8)
      assert.strictEqual(yield* counterValue("tcp_proxy_frontend_bytes_received_total"), 70)
      assert.strictEqual(yield* histogramCount("tcp_proxy_connection_duration_seconds"), 7)
      assert.strictEqual(yield* gaugeValue("tcp_proxy_connections_active"), 3)
      // A newer export replaces the worker's last one.
      metrics.absorb(1, yield* workerExport(5, 0))
      assert.strictEqual(yield* counterValue("tcp_proxy_connections_total"), 10)
      assert.strictEqual(yield* gaugeValue("tcp_proxy_connections_active"), 1)
      // Worker 2 is gone: its counts stay, its open connections do not; its replacement starts from zero.
      metrics.absorb(2, undefined)
      metrics.absorb(2, yield* workerExport(1, 1))
      assert.strictEqual(yield* counterValue("tcp_proxy_connections_total"), 11)
      assert.strictEqual(yield* histogramCount("tcp_proxy_connection_duration_seconds"), 10)
      assert.strictEqual(yield* gaugeValue("tcp_proxy_connections_active"), 1)
    }).pipe(Effect.scoped, Effect.provide(metricsAndRegistry)))

  it.effect("tcp_proxy_workers reads the running workers, and 1 without workers", () =>
    Effect.gen(function*() {
      const metrics = yield* Metrics
      assert.strictEqual(yield* gaugeValue("tcp_proxy_workers"), 1)
      let running = 3
      yield* Effect.scoped(Effect.gen(function*() {
        yield* metrics.trackWorkers(() => running)
        assert.strictEqual(yield* gaugeValue("tcp_proxy_workers"), 3)
        running = 2
        assert.strictEqual(yield* gaugeValue("tcp_proxy_workers"), 2)
      }))
      assert.strictEqual(yield* gaugeValue("tcp_proxy_workers"), 1)
    }).pipe(Effect.provide(metricsAndRegistry)))
})

describe("BackendRegistry.countRemote", () => {
  it.effect("other workers' connections add to a backend's count, and keep a backend that left until they close", () =>
    Effect.gen(function*() {
      const registry = yield* BackendRegistry
      yield* connectionOpened(a.address)
      registry.countRemote(1, new Map([[a.address, 2], [b.address, 1]]))
      registry.countRemote(2, new Map([[a.address, 3]]))
      assert.strictEqual(registry.get(a.address)?.activeConnections, 6)
      assert.strictEqual(registry.get(b.address)?.activeConnections, 1)
      registry.countRemote(2, undefined)
      assert.strictEqual(registry.get(a.address)?.activeConnections, 3)
      // b leaves while worker 1 still has a connection to it: kept, then forgotten once it closes.
      yield* registry.update([a])
      assert.strictEqual((yield* series("tcp_proxy_backend_connections_active", { backend: b.address })).type, "Gauge")
      registry.countRemote(1, new Map([[a.address, 2]]))
      const left = Metric.snapshotUnsafe(yield* Effect.context<never>()).filter((s) => s.attributes?.["backend"] === b.address)
      assert.deepStrictEqual(left, [])
    }).pipe(Effect.provide(BackendRegistryLive.layer([a, b]).pipe(Layer.provideMerge(Layer.mergeAll(poolSettings([a, b]), metricsAndRegistry))))))
})

/** A `ControlLink` double: members set by the test, failed dials recorded. */
const linkDouble = Effect.gen(function*() {
  const members = yield* SubscriptionRef.make<ReadonlyArray<MemberState>>([])
  const failures: Array<string> = []
  const link = ControlLink.of({
    worker: 1,
    members: () => SubscriptionRef.changes(members),
    dialFailed: (_pool, address, reason) => failures.push(`${address} ${reason ?? ""}`),
    countActive: () => Effect.void
  })
  return { link, members, failures }
})

const member = (backend: typeof a, state: MemberState["state"], admin: MemberState["admin"] = "ready"): MemberState => ({
  backend,
  state,
  admin,
  since: 1000
})

describe("a worker's mirror registry", () => {
  it.effect("follows the control part's records and sends its failed dials there", () =>
    Effect.gen(function*() {
      const { failures, link, members } = yield* linkDouble
      yield* SubscriptionRef.set(members, [member(a, "HEALTHY"), member(b, "UNHEALTHY")])
      const mirror = BackendRegistryLive.mirror.pipe(
        Layer.provide(Layer.mergeAll(poolSettings([]), freshMetrics, Layer.succeed(ControlLink, link)))
      )
      yield* Effect.gen(function*() {
        const registry = yield* BackendRegistry
        // The first list is in force as the registry is built.
        assert.deepStrictEqual(registry.selection().eligible.map((s) => s.backend.address), [a.address])
        assert.strictEqual(registry.get(b.address)?.since, 1000)
        // A failed dial is the owner's to count: the state here does not change.
        yield* registry.report(a.address, false, "refused")
        yield* registry.report(a.address, false, "refused")
        yield* registry.report(a.address, false, "refused")
        assert.deepStrictEqual(failures, [`${a.address} refused`, `${a.address} refused`, `${a.address} refused`])
        assert.strictEqual(registry.get(a.address)?.state, "HEALTHY")
        // Its own updates change nothing: membership is the owner's.
        assert.deepStrictEqual(yield* registry.update([]), { added: [], removed: [], reweighted: [] })
        assert.isDefined(registry.get(a.address))
        // The owner's changes arrive: a down, b up and drained, a new weight.
        const lease = registry.acquire(a.address)!
        let closed = false
        lease.whenDown(() => (closed = true))
        const changes = yield* registry.subscribe
        yield* SubscriptionRef.set(members, [member(a, "UNHEALTHY"), member({ ...b, weight: 5 }, "HEALTHY", "drain")])
        yield* Stream.runHead(changes)
        assert.isTrue(closed, "--close-on-unhealthy reaches a worker's connections")
        assert.deepStrictEqual(registry.selection().eligible, [])
        assert.strictEqual(registry.get(b.address)?.admin, "drain")
        assert.strictEqual(registry.get(b.address)?.weight, 5)
        lease.release()
      }).pipe(Effect.provide(mirror))
    }).pipe(Effect.scoped))
})

describe("ConfigCodec", () => {
  it("a configuration survives the trip to a worker thread (a structured clone)", () => {
    const config = Config.make({
      backends: [a, b],
      idleTimeout: Option.some(Config.defaults.dialTimeout)
    })
    const travelled = ConfigCodec.decode(structuredClone(ConfigCodec.encode(config)))
    assert.deepStrictEqual(ConfigCodec.encode(travelled), ConfigCodec.encode(config))
    assert.isTrue(Option.isSome(travelled.idleTimeout))
  })
})
