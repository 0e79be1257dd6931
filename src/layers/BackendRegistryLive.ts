/**
 * The in-memory backend registry: the one record of each backend of a pool.
 *
 * @since 0.1.0
 */
import * as Clock from "effect/Clock"
import * as Effect from "effect/Effect"
import * as Layer from "effect/Layer"
import * as PubSub from "effect/PubSub"
import * as Stream from "effect/Stream"
import * as SubscriptionRef from "effect/SubscriptionRef"
import type { Backend } from "../domain/Config.ts"
import * as Health from "../domain/Health.ts"
import {
  BackendRegistry,
  type BackendStatus,
  type Lease,
  RegistryChange,
  type Selection
} from "../services/BackendRegistry.ts"
import { Metrics } from "../services/Metrics.ts"
import { PoolSettings } from "../services/Pool.ts"

/** A backend's record: mutable inside this module, read-only to everyone else. */
class Entry implements BackendStatus {
  health: Health.HealthCounter = Health.initial
  activeConnections = 0
  member = true
  eligible = false
  backend: Backend
  since: number
  constructor(backend: Backend, since: number) {
    this.backend = backend
    this.since = since
  }
  get state(): Health.HealthState {
    return Health.state(this.health)
  }
  get weight(): number {
    return this.backend.weight
  }
}

/** Builds a registry holding `backends`, every one HEALTHY. */
export const make = Effect.fnUntraced(function*(backends: ReadonlyArray<Backend>) {
  const settings = yield* PoolSettings
  const metrics = yield* Metrics
  const clock = yield* Clock.Clock
  const changes = yield* PubSub.unbounded<RegistryChange>()
  /** Every record: the members, and those that left but still have connections open. */
  const entries = new Map<string, Entry>()
  let members: ReadonlyArray<Entry> = []
  let selection: Selection = { members, eligible: [], generation: 0 }

  /** Recomputes who may be picked, after any change of membership or state. */
  const select = (generation: number) => {
    const eligible = members.filter((entry) => entry.state === "HEALTHY")
    for (const entry of entries.values()) entry.eligible = false
    for (const entry of eligible) entry.eligible = true
    selection = { members, eligible, generation }
  }

  /** Forgets a record that left and has no connection open any more; its series go. */
  const dropIfGone = (entry: Entry): void => {
    if (entry.member || entry.activeConnections > 0 || entries.get(entry.backend.address) !== entry) return
    entries.delete(entry.backend.address)
    metrics.untrackBackend(entry.backend.address, entry)
  }

  const update = (next: ReadonlyArray<Backend>) =>
    Effect.suspend(() => {
      const wanted = new Map(next.map((backend) => [backend.address, backend]))
      const happened: Array<RegistryChange> = []
      const gone: Array<Entry> = []
      const joined: Array<Entry> = []
      for (const entry of members) {
        if (!wanted.has(entry.backend.address)) {
          entry.member = false
          happened.push(RegistryChange.Removed({ backend: entry.backend }))
          gone.push(entry)
        }
      }
      const ordered: Array<Entry> = []
      for (const backend of wanted.values()) {
        let entry = entries.get(backend.address)
        if (entry === undefined) {
          entry = new Entry(backend, clock.currentTimeMillisUnsafe())
          entries.set(backend.address, entry)
          joined.push(entry)
          happened.push(RegistryChange.Added({ backend }))
        } else if (!entry.member) {
          // It left and comes back while connections to it are still open: the same record, its count intact.
          entry.member = true
          entry.backend = backend
          happened.push(RegistryChange.Added({ backend }))
        } else if (entry.backend.weight !== backend.weight) {
          entry.backend = backend
          happened.push(RegistryChange.Reweighted({ backend }))
        } else {
          entry.backend = backend
        }
        ordered.push(entry)
      }
      const changed = happened.length > 0 || ordered.some((entry, i) => members[i] !== entry)
      members = ordered
      select(changed ? selection.generation + 1 : selection.generation)
      for (const entry of joined) metrics.trackBackend(entry.backend.address, entry)
      for (const entry of gone) dropIfGone(entry)
      const addresses = (tag: RegistryChange["_tag"]) =>
        happened.filter((change) => change._tag === tag).map((change) => change.backend.address)
      return Effect.as(PubSub.publishAll(changes, happened), {
        added: addresses("Added"),
        removed: addresses("Removed"),
        reweighted: addresses("Reweighted")
      })
    })

  const report = (address: string, success: boolean, reason?: string) =>
    Effect.suspend(() => {
      const entry = entries.get(address)
      if (entry === undefined || !entry.member) return Effect.void
      const { health } = SubscriptionRef.getUnsafe(settings)
      const before = entry.health
      entry.health = Health.next(before, success, { unhealthy: health.unhealthyThreshold, healthy: health.healthyThreshold })
      if (entry.health.healthy === before.healthy) return Effect.void
      entry.since = clock.currentTimeMillisUnsafe()
      select(selection.generation)
      const state = entry.state
      return Effect.andThen(
        state === "HEALTHY"
          ? Effect.logInfo(`backend ${address} now HEALTHY`)
          : reason === undefined
          ? Effect.logWarning(`backend ${address} now UNHEALTHY`)
          : Effect.logWarning(`backend ${address} now UNHEALTHY`).pipe(Effect.annotateLogs({ reason })),
        PubSub.publish(changes, RegistryChange.StateChanged({ backend: entry.backend, state }))
      )
    })

  const acquire = (address: string): Lease | undefined => {
    const entry = entries.get(address)
    if (entry === undefined) return undefined
    entry.activeConnections++
    let held = true
    return {
      backend: entry,
      release: () => {
        if (!held) return
        held = false
        entry.activeConnections--
        dropIfGone(entry)
      }
    }
  }

  yield* update(backends)
  // When the pool goes, its backends leave it: their series go as their last connections close.
  yield* Effect.addFinalizer(() => update([]))
  return BackendRegistry.of({
    all: Effect.sync(() => members),
    selection: () => selection,
    update,
    report,
    acquire,
    subscribe: Effect.map(PubSub.subscribe(changes), Stream.fromSubscription)
  })
})

/** A registry starting with `backends`, for the pool whose settings and metrics are in context. */
export const layer = (backends: ReadonlyArray<Backend>): Layer.Layer<BackendRegistry, never, PoolSettings | Metrics> =>
  Layer.effect(BackendRegistry, make(backends))
