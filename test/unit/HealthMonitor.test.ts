import { assert, describe, it } from "@effect/vitest"
import { Context, Deferred, Duration, Effect, Layer, Logger, Metric } from "effect"
import { TestClock } from "effect/testing"
import type { Backend, HealthSettings } from "../../src/domain/Config.ts"
import * as BackendRegistryLive from "../../src/layers/BackendRegistryLive.ts"
import * as HealthMonitorLive from "../../src/layers/HealthMonitorLive.ts"
import * as LogLimitsLive from "../../src/layers/LogLimitsLive.ts"
import * as MetricsLive from "../../src/layers/MetricsLive.ts"
import { BackendRegistry } from "../../src/services/BackendRegistry.ts"
import { HealthCheck, HealthCheckError } from "../../src/services/HealthCheck.ts"
import { Metrics } from "../../src/services/Metrics.ts"
import { PoolSettings } from "../../src/services/Pool.ts"
import { backend, freshMetrics, poolSettings, setState } from "./fixtures.ts"
const a = backend("10.0.0.1", 80)
const b = backend("10.0.0.2", 80)

/** Different thresholds, so a test can tell which one was applied. */
const settings: HealthSettings = {
  interval: Duration.seconds(5),
  timeout: Duration.seconds(1),
  unhealthyThreshold: 3,
  healthyThreshold: 2
}

/** What a scripted check answers: a failure of the backend, or of the proxy's own resources. */
type Answer = "success" | "failure" | "local"

/**
 * A scripted world: the health check answers what `answers` says for each
 * backend (success when unset) and counts its calls; the registry and the
 * metrics are the real layers, over a metric registry of this test's own.
 * The first checks run while the layer is built, so `failing` scripts the
 * backends whose checks fail from the start.
 */
const makeWorld = (
  failing: ReadonlyArray<Backend> = [],
  registry: Layer.Layer<BackendRegistry, never, PoolSettings | Metrics> = BackendRegistryLive.layer([a, b])
) => {
  const answers = new Map<string, Answer>(failing.map((target) => [target.address, "failure"]))
  const calls = new Map<string, number>()
  const logs: Array<string> = []
  const errors: Array<string> = []
  const ScriptedCheck = Layer.succeed(HealthCheck)({
    check: (target) =>
      Effect.suspend(() => {
        calls.set(target.address, (calls.get(target.address) ?? 0) + 1)
        const answer = answers.get(target.address) ?? "success"
        return answer === "success"
          ? Effect.void
          : Effect.fail(new HealthCheckError({ backend: target.address, reason: `scripted ${answer}`, local: answer === "local" }))
      })
  })
  const CapturedLogs = Logger.layer([
    Logger.make<unknown, void>(({ logLevel, message }) => {
      const text = Array.isArray(message) ? message.join(" ") : String(message)
      logs.push(text)
      if (logLevel === "Error") errors.push(text)
    })
  ])
  const FreshMetricRegistry = Layer.sync(Metric.MetricRegistry, () => new Map())
  const shared = Layer.mergeAll(
    MetricsLive.layer.pipe(Layer.provide(FreshMetricRegistry)),
    ScriptedCheck,
    LogLimitsLive.layer,
    poolSettings([a, b], settings)
  )
  const layer = HealthMonitorLive.layer.pipe(
    Layer.provideMerge(registry),
    Layer.provideMerge(shared),
    Layer.provide(CapturedLogs)
  )
  return {
    layer,
    logs,
    errors,
    calls: (target: Backend) => calls.get(target.address) ?? 0,
    /** From now on every check of `target` answers `answer`. */
    answer: (target: Backend, answer: Answer | boolean) =>
      Effect.sync(() => answers.set(target.address, answer === true ? "success" : answer === false ? "failure" : answer))
  }
}

/** Lets the checks that are due now run (the first ones have already run while the layer was built). */
const settle = TestClock.adjust(Duration.zero)
/** Advances to the next round of checks, and lets it run. */
const nextRound = TestClock.adjust(settings.interval)

const healthyAddresses = Effect.gen(function*() {
  const registry = yield* BackendRegistry
  return registry.selection().eligible.map((status) => status.backend.address)
})

const stateOf = (target: Backend) =>
  Effect.gen(function*() {
    const registry = yield* BackendRegistry
    const status = (yield* registry.all).find((s) => s.backend.address === target.address)
    if (status === undefined) return assert.fail(`no backend ${target.address}`)
    return status.state
  })

/** The snapshot as a map from series (`name{labels}`) to value. */
const metricValues = Effect.gen(function*() {
  const metrics = yield* Metrics
  const values = new Map<string, string>()
  for (const line of (yield* metrics.snapshot).split("\n")) {
    const at = line.lastIndexOf(": ")
    values.set(line.slice(0, at), line.slice(at + 2))
  }
  return values
})

const healthyGauge = (target: Backend) => `tcp_proxy_backend_healthy{backend="${target.address}"}`
const checksCounter = (target: Backend, result: "success" | "failure") =>
  `tcp_proxy_health_checks_total{backend="${target.address}",result="${result}"}`

describe("HealthMonitorLive", () => {
  it.effect("every backend starts HEALTHY, with its gauge at 1", () => {
    const world = makeWorld()
    return Effect.gen(function*() {
      assert.strictEqual(yield* stateOf(a), "HEALTHY")
      assert.strictEqual(yield* stateOf(b), "HEALTHY")
      const values = yield* metricValues
      assert.strictEqual(values.get(healthyGauge(a)), "1")
      assert.strictEqual(values.get(healthyGauge(b)), "1")
    }).pipe(Effect.provide(world.layer))
  })

  it.effect("the first check runs at start, the next one interval later", () => {
    const world = makeWorld()
    return Effect.gen(function*() {
      yield* settle
      assert.strictEqual(world.calls(a), 1)
      assert.strictEqual(world.calls(b), 1)
      yield* TestClock.adjust(Duration.subtract(settings.interval, Duration.millis(1)))
      assert.strictEqual(world.calls(a), 1)
      yield* TestClock.adjust(Duration.millis(1))
      assert.strictEqual(world.calls(a), 2)
      assert.strictEqual(world.calls(b), 2)
      yield* nextRound
      yield* nextRound
      assert.strictEqual(world.calls(a), 4)
      const values = yield* metricValues
      assert.strictEqual(values.get(checksCounter(a, "success")), "4")
      assert.strictEqual(values.get(checksCounter(a, "failure")), "0")
    }).pipe(Effect.provide(world.layer))
  })

  it.effect("3 consecutive failures make a backend UNHEALTHY, 2 do not", () => {
    const world = makeWorld([a])
    return Effect.gen(function*() {
      yield* settle // failure 1, at start
      yield* nextRound // failure 2
      assert.strictEqual(yield* stateOf(a), "HEALTHY")
      assert.deepStrictEqual(yield* healthyAddresses, [a.address, b.address])
      assert.strictEqual((yield* metricValues).get(healthyGauge(a)), "1")

      yield* nextRound // failure 3
      assert.strictEqual(yield* stateOf(a), "UNHEALTHY")
      assert.deepStrictEqual(yield* healthyAddresses, [b.address])
      const values = yield* metricValues
      assert.strictEqual(values.get(healthyGauge(a)), "0")
      assert.strictEqual(values.get(healthyGauge(b)), "1")
      assert.strictEqual(values.get(checksCounter(a, "failure")), "3")
      assert.strictEqual(values.get(checksCounter(a, "success")), "0")
      assert.strictEqual(values.get(checksCounter(b, "success")), "3")
      assert.strictEqual(values.get(checksCounter(b, "failure")), "0")
      assert.strictEqual(world.logs.filter((line) => line === `backend ${a.address} now UNHEALTHY`).length, 1)

      // more failures keep it UNHEALTHY and log nothing new
      yield* nextRound
      yield* nextRound
      assert.strictEqual(yield* stateOf(a), "UNHEALTHY")
      assert.strictEqual(world.logs.filter((line) => line.includes(a.address)).length, 1)
      assert.strictEqual((yield* metricValues).get(checksCounter(a, "failure")), "5")
    }).pipe(Effect.provide(world.layer))
  })

  it.effect("a check that fails for lack of a local resource is not counted against the backend, and is an error line", () => {
    const world = makeWorld()
    return Effect.gen(function*() {
      yield* settle
      yield* world.answer(a, "local")
      for (let round = 0; round < 5; round++) yield* nextRound
      assert.strictEqual(yield* stateOf(a), "HEALTHY")
      const values = yield* metricValues
      assert.strictEqual(values.get(checksCounter(a, "failure")), "0")
      assert.strictEqual(values.get(healthyGauge(a)), "1")
      assert.strictEqual(world.errors.length, 5, "at most one a second: the rounds are 5 s apart")
      assert.match(world.errors[0]!, /scripted local.*not counted against the backend/)
    }).pipe(Effect.provide(world.layer))
  })

  it.effect("flapping (fail, fail, success, fail, fail) stays HEALTHY", () => {
    const world = makeWorld([a])
    return Effect.gen(function*() {
      yield* settle // fail
      yield* nextRound // fail
      yield* world.answer(a, true)
      yield* nextRound // success: the streak starts over
      yield* world.answer(a, false)
      yield* nextRound // fail
      yield* nextRound // fail
      assert.strictEqual(yield* stateOf(a), "HEALTHY")
      assert.deepStrictEqual(yield* healthyAddresses, [a.address, b.address])
      const values = yield* metricValues
      assert.strictEqual(values.get(healthyGauge(a)), "1")
      assert.strictEqual(values.get(checksCounter(a, "failure")), "4")
      assert.strictEqual(values.get(checksCounter(a, "success")), "1")
      assert.isFalse(world.logs.some((line) => line.includes("UNHEALTHY")))

      yield* nextRound // the third failure in a row since the success
      assert.strictEqual(yield* stateOf(a), "UNHEALTHY")
    }).pipe(Effect.provide(world.layer))
  })

  it.effect("recovers after healthyThreshold consecutive successes", () => {
    const world = makeWorld([a])
    return Effect.gen(function*() {
      yield* settle
      yield* nextRound
      yield* nextRound
      assert.strictEqual(yield* stateOf(a), "UNHEALTHY")

      yield* world.answer(a, true)
      yield* nextRound // success 1 of 2
      assert.strictEqual(yield* stateOf(a), "UNHEALTHY")
      assert.strictEqual((yield* metricValues).get(healthyGauge(a)), "0")

      yield* world.answer(a, false)
      yield* nextRound // a failure restarts the recovery
      yield* world.answer(a, true)
      yield* nextRound // success 1 of 2 again
      assert.strictEqual(yield* stateOf(a), "UNHEALTHY")

      yield* nextRound // success 2 of 2
      assert.strictEqual(yield* stateOf(a), "HEALTHY")
      assert.deepStrictEqual(yield* healthyAddresses, [a.address, b.address])
      const values = yield* metricValues
      assert.strictEqual(values.get(healthyGauge(a)), "1")
      assert.strictEqual(values.get(checksCounter(a, "success")), "3")
      assert.strictEqual(values.get(checksCounter(a, "failure")), "4")
      assert.deepStrictEqual(world.logs.filter((line) => line.includes(a.address)), [
        `backend ${a.address} now UNHEALTHY`,
        `backend ${a.address} now HEALTHY`
      ])
    }).pipe(Effect.provide(world.layer))
  })

  it.effect("passive failures (report) count toward the unhealthy threshold", () => {
    const world = makeWorld([a])
    return Effect.gen(function*() {
      const monitor = yield* BackendRegistry
      yield* settle // active failure 1
      yield* monitor.report(a.address, false) // passive failure 2
      assert.strictEqual(yield* stateOf(a), "HEALTHY")
      yield* monitor.report(a.address, false) // passive failure 3, between two checks
      assert.strictEqual(yield* stateOf(a), "UNHEALTHY")
      assert.deepStrictEqual(yield* healthyAddresses, [b.address])
      const values = yield* metricValues
      assert.strictEqual(values.get(healthyGauge(a)), "0")
      // passive results are not health checks
      assert.strictEqual(values.get(checksCounter(a, "failure")), "1")
      assert.strictEqual(world.calls(a), 1)
    }).pipe(Effect.provide(world.layer))
  })

  it.effect("passive failures alone make a backend UNHEALTHY, and a success in between resets them", () => {
    const world = makeWorld()
    return Effect.gen(function*() {
      const monitor = yield* BackendRegistry
      yield* settle // active success
      yield* monitor.report(b.address, false)
      yield* monitor.report(b.address, false)
      yield* nextRound // active success: the streak starts over
      yield* monitor.report(b.address, false)
      yield* monitor.report(b.address, false)
      assert.strictEqual(yield* stateOf(b), "HEALTHY")
      yield* monitor.report(b.address, false)
      assert.strictEqual(yield* stateOf(b), "UNHEALTHY")
      assert.strictEqual(yield* stateOf(a), "HEALTHY")
      // and the active checks bring it back
      yield* nextRound
      yield* nextRound
      assert.strictEqual(yield* stateOf(b), "HEALTHY")
    }).pipe(Effect.provide(world.layer))
  })

  it.effect("the checks stop when the layer is released", () => {
    const world = makeWorld()
    return Effect.gen(function*() {
      yield* Effect.scoped(Effect.gen(function*() {
        yield* Layer.build(world.layer)
        yield* settle
        yield* nextRound
      }))
      assert.strictEqual(world.calls(a), 2)
      yield* nextRound
      yield* nextRound
      assert.strictEqual(world.calls(a), 2)
      assert.strictEqual(world.calls(b), 2)
    })
  })

  it.effect("starts from the registry's state: a backend already UNHEALTHY recovers after healthyThreshold successes", () => {
    const alreadyDown = Layer.effect(
      BackendRegistry,
      Effect.tap(BackendRegistryLive.make([a, b]), (registry) =>
        setState(a.address, "UNHEALTHY").pipe(Effect.provideService(BackendRegistry, registry)))
    )
    const world = makeWorld([], alreadyDown)
    return Effect.gen(function*() {
      yield* settle // success 1, at start
      assert.strictEqual(yield* stateOf(a), "UNHEALTHY")
      assert.strictEqual((yield* metricValues).get(healthyGauge(a)), "0")
      yield* nextRound // success 2
      assert.strictEqual(yield* stateOf(a), "HEALTHY")
    }).pipe(Effect.provide(world.layer))
  })

  it.effect("a big pool is checked at most maxConcurrentChecks at a time, every backend in turn, and a removed one stops waiting", () => {
    const many = Array.from({ length: HealthMonitorLive.maxConcurrentChecks + 44 }, (_, i) => backend("10.1.0.1", 1000 + i))
    let running = 0
    let peak = 0
    const checked = new Set<string>()
    return Effect.gen(function*() {
      const gate = yield* Deferred.make<void>()
      const HeldCheck = Layer.succeed(HealthCheck)({
        check: (target) =>
          Effect.suspend(() => {
            running++
            peak = Math.max(peak, running)
            checked.add(target.address)
            return Deferred.await(gate)
          }).pipe(Effect.ensuring(Effect.sync(() => running--)))
      })
      const layer = HealthMonitorLive.layer.pipe(
        Layer.provideMerge(BackendRegistryLive.layer(many)),
        Layer.provideMerge(Layer.mergeAll(freshMetrics, HeldCheck, LogLimitsLive.layer, poolSettings(many, settings)))
      )
      yield* Effect.scoped(Effect.gen(function*() {
        const context = yield* Layer.build(layer)
        yield* settle
        assert.strictEqual(running, HealthMonitorLive.maxConcurrentChecks)
        // A waiting backend that leaves the pool gives up its place.
        const registry = Context.get(context, BackendRegistry)
        yield* registry.update(many.slice(0, -1))
        yield* Deferred.succeed(gate, undefined)
        yield* settle
        assert.strictEqual(peak, HealthMonitorLive.maxConcurrentChecks)
        assert.strictEqual(checked.size, many.length - 1)
        assert.strictEqual(running, 0)
      }))
    })
  })

  it.effect("maintenance stops a backend's checks; ready starts them again, the first at once; drain keeps them", () => {
    const world = makeWorld()
    return Effect.gen(function*() {
      const registry = yield* BackendRegistry
      yield* settle
      assert.strictEqual(world.calls(a), 1)
      yield* registry.setAdmin(a.address, "maintenance")
      yield* settle
      yield* nextRound
      yield* nextRound
      assert.strictEqual(world.calls(a), 1, "no check in maintenance")
      assert.strictEqual(world.calls(b), 3)
      yield* registry.setAdmin(a.address, "ready")
      yield* settle
      assert.strictEqual(world.calls(a), 2, "checked again at once")
      yield* registry.setAdmin(a.address, "drain")
      yield* nextRound
      assert.strictEqual(world.calls(a), 3, "a drained backend is still checked")
    }).pipe(Effect.provide(world.layer))
  })
})
