/**
 * Active health checking of one pool: one fiber per member repeats the check
 * every health interval and reports each result to the registry, which
 * applies the thresholds. Checks start and stop with their backends, and
 * restart when a reload changes the interval; a backend an operator put in
 * maintenance is not checked until it is back. A check that fails because the
 * proxy ran out of a local resource says nothing about the backend: it is
 * not reported, and is logged at error level (at most once a second, with
 * the pool's dials), since clients are likely turned away meanwhile.
 *
 * @since 0.1.0
 */
import * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
import * as FiberMap from "effect/FiberMap"
import * as Layer from "effect/Layer"
import * as Option from "effect/Option"
import * as Schedule from "effect/Schedule"
import * as Stream from "effect/Stream"
import * as SubscriptionRef from "effect/SubscriptionRef"
import type { Backend } from "../domain/Config.ts"
import { BackendRegistry, type BackendStatus } from "../services/BackendRegistry.ts"
import { HealthCheck } from "../services/HealthCheck.ts"
import { LogLimits } from "../services/LogLimits.ts"
import { Metrics } from "../services/Metrics.ts"
import { PoolSettings } from "../services/Pool.ts"

/**
 * Checks of one pool that may run at once: a pool of thousands of backends
 * checks them in waves instead of opening thousands of connections in the
 * same instant (and running the proxy out of descriptors).
 */
export const maxConcurrentChecks = 256

/** A check waiting for its turn: `grant` lets it run; an interrupted one is skipped. */
interface Waiter {
  readonly grant: () => void
  cancelled: boolean
}

/**
 * Runs effects at most `max` at a time, the rest in arrival order, at O(1)
 * per start and end however many wait (Effect's `Semaphore` wakes by scanning
 * every waiter, quadratic for the tens of thousands a big pool queues at once).
 */
const limiter = (max: number) => {
  let running = 0
  let waiting: Array<Waiter> = []
  let head = 0
  /** Hands the slot of an effect that ended to the next waiter, or frees it. */
  const release = (): void => {
    while (head < waiting.length) {
      const next = waiting[head++]!
      if (!next.cancelled) {
        next.grant()
        return
      }
    }
    waiting = []
    head = 0
    running--
  }
  /** Waits for a slot; interrupted while waiting, gives back a slot it was granted meanwhile. */
  const acquire = Effect.callback<void>((resume) => {
    if (running < max) {
      running++
      return resume(Effect.void)
    }
    let granted = false
    const waiter: Waiter = {
      cancelled: false,
      grant: () => {
        granted = true
        resume(Effect.void)
      }
    }
    waiting.push(waiter)
    return Effect.sync(() => {
      waiter.cancelled = true
      if (granted) release()
    })
  })
  return <A, E, R>(effect: Effect.Effect<A, E, R>): Effect.Effect<A, E, R> =>
    Effect.uninterruptibleMask((restore) =>
      Effect.andThen(restore(acquire), Effect.ensuring(restore(effect), Effect.sync(release)))
    )
}

/** Checks every member of the pool's registry with the pool's health settings, for as long as the layer lives. */
export const layer: Layer.Layer<never, never, BackendRegistry | HealthCheck | LogLimits | Metrics | PoolSettings> = Layer
  .effectDiscard(Effect.gen(function*() {
    const registry = yield* BackendRegistry
    const healthCheck = yield* HealthCheck
    const metrics = yield* Metrics
    const settings = yield* PoolSettings
    const logLimits = yield* LogLimits
    let interval = SubscriptionRef.getUnsafe(settings).health.interval

    const record = (backend: Backend, success: boolean, reason?: string) =>
      Effect.suspend(() => {
        metrics.healthChecked(backend.address, success)
        return registry.report(backend.address, success, reason)
      })

    const checkOnce = (backend: Backend) =>
      Effect.suspend(() => {
        const pool = SubscriptionRef.getUnsafe(settings)
        return healthCheck.check(backend, {
          timeoutMs: Duration.toMillis(pool.health.timeout),
          proxyProtocol: pool.proxyProtocol,
          tls: Option.match(pool.backendTls, {
            onNone: () => undefined,
            onSome: (tls) => ({ ca: Option.getOrUndefined(tls.ca) })
          }),
          payload: pool.check
        })
      }).pipe(
        Effect.matchEffect({
          onSuccess: () => record(backend, true),
          onFailure: (error) =>
            error.local
              ? logLimits.log({
                kind: "out of a local resource",
                perSecond: 1,
                level: "error",
                message: `${error.message}; not counted against the backend`
              })
              : record(backend, false, error.reason)
        })
      )

    const limited = limiter(maxConcurrentChecks)
    const monitors = yield* FiberMap.make<string>()
    /** (Re)starts the check loop of a backend; the first check runs at once (once a permit is free). */
    const loop = (backend: Backend) =>
      FiberMap.run(
        monitors,
        backend.address,
        limited(checkOnce(backend)).pipe(Effect.repeat(Schedule.fixed(interval)))
      )

    /** Checks a member, unless an operator put it in maintenance. */
    const watch = (status: BackendStatus) =>
      status.admin === "maintenance" ? Effect.void : loop(status.backend)

    const changes = yield* registry.subscribe
    for (const status of yield* registry.all) yield* watch(status)
    yield* changes.pipe(
      Stream.runForEach((change) => {
        switch (change._tag) {
          case "Added":
            return loop(change.backend)
          case "Removed":
            return FiberMap.remove(monitors, change.backend.address)
          case "AdminChanged":
            // Maintenance stops the checks; back from it, they start again (the first one at once).
            return change.admin === "maintenance"
              ? FiberMap.remove(monitors, change.backend.address)
              : Effect.flatMap(FiberMap.has(monitors, change.backend.address), (running) =>
                running ? Effect.void : loop(change.backend))
          case "StateChanged":
          case "Reweighted":
            return Effect.void
        }
      }),
      Effect.forkScoped
    )
    yield* SubscriptionRef.changes(settings).pipe(
      Stream.runForEach((config) => {
        if (Duration.equals(config.health.interval, interval)) return Effect.void
        interval = config.health.interval
        return Effect.flatMap(registry.all, Effect.forEach(watch, { discard: true }))
      }),
      Effect.forkScoped
    )
  }))
