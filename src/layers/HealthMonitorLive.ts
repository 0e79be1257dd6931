/**
 * Health monitoring: one fiber per backend repeats the active check every
 * `--health-interval`, and every result (active checks and failed dials of
 * real connections alike) goes through the thresholds of `domain/Health`.
 * Monitors start and stop with their backends in the registry, and restart
 * when a reload changes the interval.
 *
 * @since 0.1.0
 */
import * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
import * as Exit from "effect/Exit"
import * as FiberMap from "effect/FiberMap"
import * as Layer from "effect/Layer"
import * as Schedule from "effect/Schedule"
import * as Stream from "effect/Stream"
import type { Backend, HealthSettings } from "../domain/Config.ts"
import * as Health from "../domain/Health.ts"
import { BackendRegistry } from "../services/BackendRegistry.ts"
import { HealthCheck } from "../services/HealthCheck.ts"
import { HealthMonitor } from "../services/HealthMonitor.ts"
import { Metrics } from "../services/Metrics.ts"
import { Settings } from "../services/Settings.ts"

/** Monitors every backend of the registry with the health settings in force. */
export const layer: Layer.Layer<HealthMonitor, never, BackendRegistry | HealthCheck | Metrics | Settings> = Layer.effect(
  HealthMonitor,
  Effect.gen(function*() {
    const registry = yield* BackendRegistry
    const healthCheck = yield* HealthCheck
    const metrics = yield* Metrics
    const settings = yield* Settings
    let health: HealthSettings = (yield* settings.current).health
    const counters = new Map<string, Health.HealthCounter>()

    /** Writes the counter's current state to the registry, logging and measuring a change. */
    const announce = (address: string) =>
      Effect.suspend(() => {
        const healthy = counters.get(address)?.healthy ?? true
        return registry.setState(address, healthy ? "HEALTHY" : "UNHEALTHY")
      }).pipe(
        Effect.flatMap((changed) => {
          if (!changed) return Effect.void
          const healthy = counters.get(address)?.healthy ?? true
          return Effect.andThen(
            metrics.healthChanged(address, healthy),
            healthy
              ? Effect.logInfo(`backend ${address} now HEALTHY`)
              : Effect.logWarning(`backend ${address} now UNHEALTHY`)
          )
        })
      )

    /** Applies one result to a monitored backend; results for unknown backends are dropped. */
    const report = (address: string, success: boolean) =>
      Effect.suspend(() => {
        const before = counters.get(address)
        if (before === undefined) return Effect.void
        const after = Health.next(before, success, {
          unhealthy: health.unhealthyThreshold,
          healthy: health.healthyThreshold
        })
        counters.set(address, after)
        return after.healthy === before.healthy ? Effect.void : announce(address)
      })

    const checkOnce = (backend: Backend) =>
      healthCheck.check(backend).pipe(
        Effect.exit,
        Effect.flatMap((exit) => {
          const success = Exit.isSuccess(exit)
          return Effect.andThen(metrics.healthChecked(backend.address, success), report(backend.address, success))
        })
      )

    const monitors = yield* FiberMap.make<string>()
    /** (Re)starts the check loop of a backend; the first check runs at once. */
    const loop = (backend: Backend) =>
      FiberMap.run(monitors, backend.address, checkOnce(backend).pipe(Effect.repeat(Schedule.fixed(health.interval))))
    /** Starts monitoring a backend from the state the registry gives it. */
    const start = (backend: Backend, healthy: boolean) =>
      Effect.suspend(() => {
        counters.set(backend.address, { healthy, streak: 0 })
        return Effect.andThen(metrics.healthChanged(backend.address, healthy), loop(backend))
      })

    const changes = yield* registry.subscribe
    const updates = yield* settings.subscribe
    for (const status of yield* registry.all) yield* start(status.backend, status.state === "HEALTHY")
    yield* changes.pipe(
      Stream.runForEach((change) => {
        switch (change._tag) {
          case "Added":
            return start(change.backend, true)
          case "Removed":
            counters.delete(change.backend.address)
            return FiberMap.remove(monitors, change.backend.address)
          case "StateChanged":
          case "Reweighted":
            return Effect.void
        }
      }),
      Effect.forkScoped
    )
    yield* updates.pipe(
      Stream.runForEach((config) =>
        Effect.suspend(() => {
          const intervalChanged = !Duration.equals(config.health.interval, health.interval)
          health = config.health
          return intervalChanged
            ? Effect.flatMap(registry.all, Effect.forEach((status) => loop(status.backend), { discard: true }))
            : Effect.void
        })
      ),
      Effect.forkScoped
    )

    return HealthMonitor.of({ report })
  })
)
