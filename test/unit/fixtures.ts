/**
 * Doubles and helpers for unit tests of a pool's parts: a real registry over
 * pool settings and a metric registry of the test's own, and ways to drive it
 * the way the proxy does (health results through the thresholds, leases of
 * active connections).
 */
import { Effect, Layer, Metric, SubscriptionRef } from "effect"
import * as Config from "../../src/domain/Config.ts"
import type { Backend } from "../../src/domain/Config.ts"
import type { HealthState } from "../../src/domain/Health.ts"
import * as BackendRegistryLive from "../../src/layers/BackendRegistryLive.ts"
import * as MetricsLive from "../../src/layers/MetricsLive.ts"
import { BackendRegistry, type Lease } from "../../src/services/BackendRegistry.ts"
import { PoolSettings } from "../../src/services/Pool.ts"

/** A backend `host:port` of weight `weight`. */
export const backend = (host: string, port: number, weight = 1): Backend => ({ address: `${host}:${port}`, host, port, weight })

/** Pool settings for `backends`, with the default health settings unless given. */
export const poolSettings = (backends: ReadonlyArray<Backend>, health: Partial<Config.HealthSettings> = {}) =>
  Layer.effect(
    PoolSettings,
    SubscriptionRef.make<Config.PoolConfig>({
      ...Config.defaultPool(Config.make({ backends })),
      health: { ...Config.defaults.health, ...health }
    })
  )

/** The metrics service over a metric registry of its own. */
export const freshMetrics = MetricsLive.layer.pipe(Layer.provide(Layer.sync(Metric.MetricRegistry, () => new Map())))

/** A real registry of `backends`, with its pool settings and metrics (the settings also provided to the test). */
export const registryOf = (backends: ReadonlyArray<Backend>, health: Partial<Config.HealthSettings> = {}) =>
  BackendRegistryLive.layer(backends).pipe(
    Layer.provideMerge(Layer.mergeAll(poolSettings(backends, health), freshMetrics))
  )

/** A real registry of `backends` over pool settings of `pool`'s parts (and the default ones for the rest). */
export const registryWith = (backends: ReadonlyArray<Backend>, pool: Partial<Config.PoolConfig>) =>
  BackendRegistryLive.layer(backends).pipe(
    Layer.provideMerge(Layer.mergeAll(
      Layer.effect(
        PoolSettings,
        SubscriptionRef.make<Config.PoolConfig>({ ...Config.defaultPool(Config.make({ backends })), ...pool })
      ),
      freshMetrics
    ))
  )

/** Brings a member to `state` the only way there is: results through the thresholds. */
export const setState = (address: string, state: HealthState) =>
  Effect.gen(function*() {
    const registry = yield* BackendRegistry
    const { health } = yield* SubscriptionRef.get(yield* PoolSettings)
    const needed = state === "HEALTHY" ? health.healthyThreshold : health.unhealthyThreshold
    for (let i = 0; i < needed; i++) {
      const member = (yield* registry.all).find((status) => status.backend.address === address)
      if (member === undefined || member.state === state) return
      yield* registry.report(address, state === "HEALTHY")
    }
  })

const leases = new WeakMap<object, Map<string, Array<Lease>>>()

/** Opens one active connection on a member, as a dial does. */
export const connectionOpened = (address: string) =>
  Effect.gen(function*() {
    const registry = yield* BackendRegistry
    const lease = registry.acquire(address)
    if (lease === undefined) return
    const held = leases.get(registry) ?? new Map<string, Array<Lease>>()
    leases.set(registry, held)
    held.set(address, [...(held.get(address) ?? []), lease])
  })

/** Closes the last connection {@link connectionOpened} opened on a member. */
export const connectionClosed = (address: string) =>
  Effect.gen(function*() {
    const registry = yield* BackendRegistry
    const lease = leases.get(registry)?.get(address)?.pop()
    if (lease !== undefined) lease.release()
  })
