import { assert, describe, it } from "@effect/vitest"
import { Effect, Layer, Metric } from "effect"
import * as Snapshot from "../../src/domain/Snapshot.ts"

/** Every test records into its own registry, never the process-global one. */
const FreshRegistry = Layer.sync(Metric.MetricRegistry, () => new Map())

const rendered = (prefix?: string) =>
  Effect.map(Metric.snapshot, (snapshots) => prefix === undefined ? Snapshot.render(snapshots) : Snapshot.render(snapshots, prefix))

describe("Snapshot.render", () => {
  it.effect("renders an unlabelled counter and gauge as `name: value`", () =>
    Effect.gen(function*() {
      yield* Metric.update(Metric.counter("tcp_proxy_connections_total", { incremental: true }), 3)
      yield* Metric.update(Metric.gauge("tcp_proxy_connections_active"), 7)
      assert.strictEqual(yield* rendered(), "tcp_proxy_connections_active: 7\ntcp_proxy_connections_total: 3")
    }).pipe(Effect.provide(FreshRegistry)))

  it.effect("shows what the metrics hold now", () =>
    Effect.gen(function*() {
      const total = Metric.counter("tcp_proxy_connections_total", { incremental: true })
      const active = Metric.gauge("tcp_proxy_connections_active")
      yield* Metric.update(total, 1)
      yield* Metric.update(active, 5)
      yield* Metric.update(total, 1)
      yield* Metric.modify(active, -2)
      assert.strictEqual(yield* rendered(), "tcp_proxy_connections_active: 3\ntcp_proxy_connections_total: 2")
    }).pipe(Effect.provide(FreshRegistry)))

  it.effect("renders labels as {a=\"x\",b=\"y\"}, sorted by name", () =>
    Effect.gen(function*() {
      const checks = Metric.counter("tcp_proxy_health_checks_total", { incremental: true })
      yield* Metric.update(Metric.withAttributes(checks, { result: "success", backend: "10.0.0.1:80" }), 4)
      yield* Metric.update(Metric.withAttributes(Metric.gauge("tcp_proxy_test_gauge"), { zeta: "z", alpha: "a", mid: "m" }), 1)
      assert.strictEqual(
        yield* rendered(),
        [
          `tcp_proxy_health_checks_total{backend="10.0.0.1:80",result="success"}: 4`,
          `tcp_proxy_test_gauge{alpha="a",mid="m",zeta="z"}: 1`
        ].join("\n")
      )
    }).pipe(Effect.provide(FreshRegistry)))

  it.effect("gives one line per labelled series", () =>
    Effect.gen(function*() {
      const errors = Metric.counter("tcp_proxy_errors_total", { incremental: true })
      yield* Metric.update(Metric.withAttributes(errors, { kind: "no_backend" }), 2)
      yield* Metric.update(Metric.withAttributes(errors, { kind: "dial" }), 1)
      yield* Metric.update(Metric.withAttributes(errors, { kind: "io" }), 5)
      assert.strictEqual(
        yield* rendered(),
        [
          `tcp_proxy_errors_total{kind="dial"}: 1`,
          `tcp_proxy_errors_total{kind="io"}: 5`,
          `tcp_proxy_errors_total{kind="no_backend"}: 2`
        ].join("\n")
      )
    }).pipe(Effect.provide(FreshRegistry)))

  it.effect("renders a histogram as its _count and _sum only", () =>
    Effect.gen(function*() {
      const duration = Metric.histogram("tcp_proxy_connection_duration_seconds", {
        boundaries: Metric.exponentialBoundaries({ start: 0.001, factor: 4, count: 13 })
      })
      yield* Metric.update(duration, 0.5)
      yield* Metric.update(duration, 1.25)
      yield* Metric.update(duration, 2)
      const connect = Metric.withAttributes(
        Metric.histogram("tcp_proxy_backend_connect_duration_seconds", { boundaries: [0.1, 1] }),
        { backend: "[::1]:9000" }
      )
      yield* Metric.update(connect, 0.25)
      const text = yield* rendered()
      assert.strictEqual(
        text,
        [
          `tcp_proxy_backend_connect_duration_seconds_count{backend="[::1]:9000"}: 1`,
          `tcp_proxy_backend_connect_duration_seconds_sum{backend="[::1]:9000"}: 0.25`,
          "tcp_proxy_connection_duration_seconds_count: 3",
          "tcp_proxy_connection_duration_seconds_sum: 3.75"
        ].join("\n")
      )
      assert.notInclude(text, "bucket")
      assert.notInclude(text, "le=")
    }).pipe(Effect.provide(FreshRegistry)))

  it.effect("sorts the lines by their text", () =>
    Effect.gen(function*() {
      // registered in an order that is not the sorted one
      yield* Metric.update(Metric.counter("tcp_proxy_zz_total", { incremental: true }), 1)
      yield* Metric.update(Metric.withAttributes(Metric.gauge("tcp_proxy_mm"), { backend: "b:2" }), 2)
      yield* Metric.update(Metric.counter("tcp_proxy_aa_total", { incremental: true }), 3)
      yield* Metric.update(Metric.withAttributes(Metric.gauge("tcp_proxy_mm"), { backend: "a:1" }), 4)
      yield* Metric.update(Metric.gauge("tcp_proxy_mm"), 5)
      const lines = (yield* rendered()).split("\n")
      assert.strictEqual(lines.length, 5)
      assert.deepStrictEqual(lines, [...lines].sort())
      assert.deepStrictEqual(lines, [
        "tcp_proxy_aa_total: 3",
        "tcp_proxy_mm: 5",
        `tcp_proxy_mm{backend="a:1"}: 4`,
        `tcp_proxy_mm{backend="b:2"}: 2`,
        "tcp_proxy_zz_total: 1"
      ])
    }).pipe(Effect.provide(FreshRegistry)))

  it.effect("leaves out metrics that are not tcp_proxy_ ones", () =>
    Effect.gen(function*() {
      yield* Metric.update(Metric.counter("http_requests_total", { incremental: true }), 9)
      yield* Metric.update(Metric.gauge("tcp_proxyx_gauge"), 9)
      yield* Metric.update(Metric.histogram("other_seconds", { boundaries: [1] }), 9)
      yield* Metric.update(Metric.counter("tcp_proxy_connections_total", { incremental: true }), 1)
      assert.strictEqual(yield* rendered(), "tcp_proxy_connections_total: 1")
    }).pipe(Effect.provide(FreshRegistry)))

  it.effect("renders nothing when no tcp_proxy_ metric exists", () =>
    Effect.gen(function*() {
      yield* Metric.update(Metric.counter("something_else_total", { incremental: true }), 1)
      assert.strictEqual(yield* rendered(), "")
    }).pipe(Effect.provide(FreshRegistry)))

  it.effect("honours another prefix", () =>
    Effect.gen(function*() {
      yield* Metric.update(Metric.counter("app_total", { incremental: true }), 2)
      yield* Metric.update(Metric.counter("tcp_proxy_connections_total", { incremental: true }), 1)
      assert.strictEqual(yield* rendered("app_"), "app_total: 2")
    }).pipe(Effect.provide(FreshRegistry)))

  it.effect("shows a metric that was only read at 0", () =>
    Effect.gen(function*() {
      yield* Metric.value(Metric.counter("tcp_proxy_connections_rejected_total", { incremental: true }))
      assert.strictEqual(yield* rendered(), "tcp_proxy_connections_rejected_total: 0")
    }).pipe(Effect.provide(FreshRegistry)))

  it.effect("escapes backslashes, quotes and newlines in label values", () =>
    Effect.gen(function*() {
      const gauge = Metric.gauge("tcp_proxy_escape")
      yield* Metric.update(Metric.withAttributes(gauge, { v: "a\"b" }), 1)
      yield* Metric.update(Metric.withAttributes(gauge, { v: "c\\d" }), 2)
      yield* Metric.update(Metric.withAttributes(gauge, { v: "e\nf" }), 3)
      const lines = (yield* rendered()).split("\n")
      assert.strictEqual(lines.length, 3)
      assert.includeMembers(lines, [
        `tcp_proxy_escape{v="a\\"b"}: 1`,
        `tcp_proxy_escape{v="c\\\\d"}: 2`,
        `tcp_proxy_escape{v="e\\nf"}: 3`
      ])
    }).pipe(Effect.provide(FreshRegistry)))
})
