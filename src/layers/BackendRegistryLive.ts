/**
 * The in-memory backend registry: the one record of each backend of a pool.
 * Two ways to build it: `layer`, the owner of the pool's health (fed by the
 * pool's discovery and health checks), and `mirror`, a worker's copy of the
 * control part's registry (fed by `ControlLink`), which counts its own
 * connections and sends its failed dials to the owner.
 *
 * @since 0.1.0
 */
import * as Clock from "effect/Clock"
import * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
import { constVoid } from "effect/Function"
import * as Layer from "effect/Layer"
import * as Option from "effect/Option"
import * as PubSub from "effect/PubSub"
import * as Stream from "effect/Stream"
import * as SubscriptionRef from "effect/SubscriptionRef"
import type { Backend } from "../domain/Config.ts"
import * as Health from "../domain/Health.ts"
import {
  type AdminState,
  BackendRegistry,
  type BackendStatus,
  type Lease,
  RegistryChange,
  type Selection
} from "../services/BackendRegistry.ts"
import { Metrics } from "../services/Metrics.ts"
import { PoolSettings } from "../services/Pool.ts"
import { ControlLink, type MemberState } from "../services/Workers.ts"

/** The share of its weight a backend starts a slow-start ramp with: near zero, never zero. */
const rampFloor = 0.01

/** A backend's record: mutable inside this module, read-only to everyone else. */
class Entry implements BackendStatus {
  health: Health.HealthCounter = Health.initial
  /** Connections counted here, and elsewhere (worker threads). */
  local = 0
  remote = 0
  member = true
  eligible = false
  admin: AdminState = "ready"
  /** The backend as configured, and as in force (`backend`: the operator's weight, when set). */
  configured: Backend
  backend: Backend
  since: number
  /** The slow-start ramp: when it started and how long it lasts (0: none). */
  rampFrom = 0
  rampMs = 0
  /** What to call when the backend turns UNHEALTHY, while their connections are open. */
  downs: Set<() => void> | undefined
  readonly now: () => number
  constructor(backend: Backend, since: number, now: () => number) {
    this.configured = backend
    this.backend = backend
    this.since = since
    this.now = now
  }
  get state(): Health.HealthState {
    return Health.state(this.health)
  }
  get activeConnections(): number {
    return this.local + this.remote
  }
  /** The weight in force: during a slow-start ramp, a share of it growing linearly from near zero. */
  get weight(): number {
    const full = this.backend.weight
    if (this.rampMs === 0) return full
    const elapsed = this.now() - this.rampFrom
    if (elapsed >= this.rampMs) {
      this.rampMs = 0
      return full
    }
    return full * Math.max(elapsed / this.rampMs, rampFloor)
  }
}

/**
 * The records and every operation on them; `make` and `makeMirror` decide
 * who feeds them. `dialFailed` receives the failed dials of a mirror.
 */
const core = Effect.fnUntraced(function*(dialFailed?: (address: string, reason: string | undefined) => void) {
  const settings = yield* PoolSettings
  const metrics = yield* Metrics
  const clock = yield* Clock.Clock
  const changes = yield* PubSub.unbounded<RegistryChange>()
  /** Every record: the members, and those that left but still have connections open. */
  const entries = new Map<string, Entry>()
  let members: ReadonlyArray<Entry> = []
  let selection: Selection = { members, eligible: [], generation: 0 }
  /** False while the first membership is built: backends there on start do not ramp up. */
  let initialised = false

  const now = () => clock.currentTimeMillisUnsafe()

  /**
   * Recomputes who may be picked, after any change of membership, state or
   * admin state: the HEALTHY members in service, backups only when no other
   * member is.
   */
  const select = (generation: number) => {
    const inService = members.filter((entry) => entry.state === "HEALTHY" && entry.admin === "ready")
    const primaries = inService.filter((entry) => entry.configured.backup !== true)
    const eligible = primaries.length > 0 ? primaries : inService
    for (const entry of entries.values()) entry.eligible = false
    for (const entry of eligible) entry.eligible = true
    selection = { members, eligible, generation }
  }

  /** Starts a member's slow-start ramp, when the pool has one. */
  const ramp = (entry: Entry) => {
    const slowStart = SubscriptionRef.getUnsafe(settings).slowStart
    if (Option.isNone(slowStart)) return
    entry.rampFrom = now()
    entry.rampMs = Duration.toMillis(slowStart.value)
  }

  /** The backend in force for a configured one: with the operator's weight, when set. */
  const inForce = (entry: Entry, adminWeight: number | undefined): Backend =>
    adminWeight === undefined || adminWeight === entry.configured.weight
      ? entry.configured
      : { ...entry.configured, weight: adminWeight }

  /** Forgets a record that left and has no connection open any more; its series go. */
  const dropIfGone = (entry: Entry): void => {
    if (entry.member || entry.local + entry.remote > 0 || entries.get(entry.backend.address) !== entry) return
    entries.delete(entry.backend.address)
    metrics.untrackBackend(entry.backend.address, entry)
  }

  /** Makes `next` the membership, recording what changed in `happened`. */
  const join = (next: ReadonlyArray<Backend>, happened: Array<RegistryChange>) => {
    const wanted = new Map(next.map((backend) => [backend.address, backend]))
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
        entry = new Entry(backend, now(), now)
        entries.set(backend.address, entry)
        joined.push(entry)
        if (initialised) ramp(entry)
        happened.push(RegistryChange.Added({ backend }))
      } else if (!entry.member) {
        // It left and comes back while connections to it are still open: the same record, its count intact.
        entry.member = true
        entry.configured = backend
        entry.backend = backend
        if (initialised) ramp(entry)
        happened.push(RegistryChange.Added({ backend }))
      } else {
        const before = entry.backend
        const adminWeight = entry.backend === entry.configured ? undefined : entry.backend.weight
        entry.configured = backend
        entry.backend = inForce(entry, adminWeight)
        if (before.weight !== entry.backend.weight || before.backup !== entry.backend.backup) {
          happened.push(RegistryChange.Reweighted({ backend: entry.backend }))
        }
      }
      ordered.push(entry)
    }
    const changed = happened.length > 0 || ordered.some((entry, i) => members[i] !== entry)
    members = ordered
    select(changed ? selection.generation + 1 : selection.generation)
    for (const entry of joined) metrics.trackBackend(entry.backend.address, entry)
    for (const entry of gone) dropIfGone(entry)
  }

  const update = (next: ReadonlyArray<Backend>) =>
    Effect.suspend(() => {
      const happened: Array<RegistryChange> = []
      join(next, happened)
      const addresses = (tag: RegistryChange["_tag"]) =>
        happened.filter((change) => change._tag === tag).map((change) => change.backend.address)
      return Effect.as(PubSub.publishAll(changes, happened), {
        added: addresses("Added"),
        removed: addresses("Removed"),
        reweighted: addresses("Reweighted")
      })
    })

  /** What follows a change of a member's health: its ramp, or closing its connections (`--close-on-unhealthy`). */
  const turned = (entry: Entry) => {
    if (entry.state === "HEALTHY") ramp(entry)
    else if (entry.downs !== undefined) {
      const downs = [...entry.downs]
      entry.downs = undefined
      for (const down of downs) down()
    }
  }

  const report = (address: string, success: boolean, reason?: string) =>
    Effect.suspend(() => {
      const entry = entries.get(address)
      if (entry === undefined || !entry.member) return Effect.void
      if (dialFailed !== undefined) {
        // A mirror: the owner applies the thresholds.
        if (!success) dialFailed(address, reason)
        return Effect.void
      }
      const { health } = SubscriptionRef.getUnsafe(settings)
      const before = entry.health
      entry.health = Health.next(before, success, { unhealthy: health.unhealthyThreshold, healthy: health.healthyThreshold })
      if (entry.health.healthy === before.healthy) return Effect.void
      entry.since = now()
      select(selection.generation)
      turned(entry)
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

  /** One connection's place in an entry's active count: one object, its operations on the prototype. */
  class EntryLease implements Lease {
    readonly backend: Entry
    #held = true
    #down: (() => void) | undefined = undefined
    constructor(entry: Entry) {
      this.backend = entry
    }
    release(): void {
      if (!this.#held) return
      this.#held = false
      const entry = this.backend
      if (this.#down !== undefined) entry.downs?.delete(this.#down)
      entry.local--
      dropIfGone(entry)
    }
    whenDown(callback: () => void): () => void {
      if (!this.#held) return constVoid
      this.#down = callback
      const entry = this.backend
      ;(entry.downs ??= new Set()).add(callback)
      return () => entry.downs?.delete(callback)
    }
  }

  const acquire = (address: string): Lease | undefined => {
    const entry = entries.get(address)
    if (entry === undefined) return undefined
    entry.local++
    return new EntryLease(entry)
  }

  const setAdmin = (address: string, admin: AdminState) =>
    Effect.suspend(() => {
      const entry = entries.get(address)
      if (entry === undefined || !entry.member) return Effect.succeed(undefined)
      if (entry.admin === admin) return Effect.succeed(entry)
      entry.admin = admin
      select(selection.generation)
      return Effect.logInfo(`backend ${address} admin ${admin}`).pipe(
        Effect.andThen(PubSub.publish(changes, RegistryChange.AdminChanged({ backend: entry.backend, admin }))),
        Effect.as(entry)
      )
    })

  const reweigh = (entry: Entry, weight: number | undefined) =>
    Effect.suspend(() => {
      const backend = inForce(entry, weight)
      if (backend.weight === entry.backend.weight) {
        entry.backend = backend
        return Effect.void
      }
      entry.backend = backend
      select(selection.generation + 1)
      return PubSub.publish(changes, RegistryChange.Reweighted({ backend }))
    })

  const setWeight = (address: string, weight: number) =>
    Effect.suspend(() => {
      const entry = entries.get(address)
      if (entry === undefined || !entry.member) return Effect.succeed(undefined)
      return reweigh(entry, weight).pipe(
        Effect.andThen(Effect.logInfo(`backend ${address} weight ${weight}`)),
        Effect.as(entry)
      )
    })

  const resetWeights = Effect.suspend(() =>
    Effect.forEach(members.filter((entry) => entry.backend !== entry.configured), (entry) => reweigh(entry, undefined), {
      discard: true
    })
  )

  /** Connections counted by each worker, by address. */
  const remoteCounts = new Map<number, ReadonlyMap<string, number>>()
  const countRemote = (source: number, counts: ReadonlyMap<string, number> | undefined) => {
    const before = remoteCounts.get(source)
    if (counts === undefined) remoteCounts.delete(source)
    else remoteCounts.set(source, counts)
    const touched = new Set([...(before?.keys() ?? []), ...(counts?.keys() ?? [])])
    for (const address of touched) {
      const entry = entries.get(address)
      if (entry === undefined) continue
      entry.remote += (counts?.get(address) ?? 0) - (before?.get(address) ?? 0)
      dropIfGone(entry)
    }
  }

  /**
   * A mirror takes the owner's records as they are: membership, weights in
   * force, health states and admin states.
   */
  const follow = (states: ReadonlyArray<MemberState>) =>
    Effect.suspend(() => {
      const happened: Array<RegistryChange> = []
      join(states.map((member) => member.backend), happened)
      let reselect = false
      for (const member of states) {
        const entry = entries.get(member.backend.address)
        if (entry === undefined) continue
        entry.since = member.since
        const healthy = member.state === "HEALTHY"
        if (entry.health.healthy !== healthy) {
          entry.health = { healthy, streak: 0 }
          reselect = true
          if (initialised) turned(entry)
          happened.push(RegistryChange.StateChanged({ backend: entry.backend, state: member.state }))
        }
        if (entry.admin !== member.admin) {
          entry.admin = member.admin
          reselect = true
          happened.push(RegistryChange.AdminChanged({ backend: entry.backend, admin: member.admin }))
        }
      }
      if (reselect) select(selection.generation)
      initialised = true
      return PubSub.publishAll(changes, happened)
    })

  const registry = BackendRegistry.of({
    all: Effect.sync(() => members),
    selection: () => selection,
    update,
    report,
    acquire,
    get: (address) => {
      const entry = entries.get(address)
      return entry?.member === true ? entry : undefined
    },
    setAdmin,
    setWeight,
    resetWeights,
    countRemote,
    subscribe: Effect.map(PubSub.subscribe(changes), Stream.fromSubscription)
  })
  const initialise = Effect.sync(() => {
    initialised = true
  })
  // When the pool goes, its backends leave it: their series go as their last connections close.
  yield* Effect.addFinalizer(() => update([]))
  return { registry, update, follow, initialise }
})

/** Builds a registry holding `backends`, every one HEALTHY. */
export const make = Effect.fnUntraced(function*(backends: ReadonlyArray<Backend>) {
  const { initialise, registry, update } = yield* core()
  yield* update(backends)
  yield* initialise
  return registry
})

/**
 * Builds a worker's registry of the pool in context: a copy of the control
 * part's, kept up to date in the background. Its membership changes only
 * with the owner's (`update` changes nothing); its failed dials go to the
 * owner, which applies the thresholds.
 */
export const makeMirror = Effect.fnUntraced(function*() {
  const link = yield* ControlLink
  const pool = SubscriptionRef.getUnsafe(yield* PoolSettings).name
  const { follow, registry } = yield* core((address, reason) => link.dialFailed(pool, address, reason))
  const states = yield* Stream.toPull(link.members(pool))
  // The first list is there at once: the control part sends it before the pool exists.
  yield* Effect.flatMap(states, (chunk) => Effect.forEach(chunk, follow, { discard: true })).pipe(
    Effect.timeoutOption("100 millis"),
    Effect.ignore
  )
  yield* states.pipe(
    Effect.flatMap((chunk) => Effect.forEach(chunk, follow, { discard: true })),
    Effect.forever,
    Effect.ignore,
    Effect.forkScoped
  )
  yield* link.countActive(pool, () => {
    const counts: Array<readonly [string, number]> = []
    for (const member of registry.selection().members) if (member.activeConnections > 0) counts.push([member.backend.address, member.activeConnections])
    return counts
  })
  return BackendRegistry.of({
    ...registry,
    update: () => Effect.succeed({ added: [], removed: [], reweighted: [] })
  })
})

/** A registry starting with `backends`, for the pool whose settings and metrics are in context. */
export const layer = (backends: ReadonlyArray<Backend>): Layer.Layer<BackendRegistry, never, PoolSettings | Metrics> =>
  Layer.effect(BackendRegistry, make(backends))

/** A worker's copy of the control part's registry of the pool in context (see {@link makeMirror}). */
export const mirror: Layer.Layer<BackendRegistry, never, PoolSettings | Metrics | ControlLink> = Layer.effect(
  BackendRegistry,
  makeMirror()
)
