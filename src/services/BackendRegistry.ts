/**
 * The members of one pool of backends and everything the proxy knows about
 * each: weight in force, health state and streak, active connections. It is
 * the one owner of these facts; the balancer, the health checks, `/backends`
 * and the metric gauges read them from here. Health changes only through
 * {@link BackendRegistry}'s `report`, which applies the pool's thresholds.
 *
 * It is also the swap point for membership: the proxy's own discovery feeds
 * it from the configuration and DNS, an embedding application may feed it
 * from its own discovery.
 *
 * @since 0.1.0
 */
import * as Context from "effect/Context"
import * as Data from "effect/Data"
import type * as Effect from "effect/Effect"
import type * as Scope from "effect/Scope"
import type * as Stream from "effect/Stream"
import type { BackendView } from "../domain/balancing/Strategy.ts"
import type { Backend } from "../domain/Config.ts"
import type { AdminState, HealthState } from "../domain/Health.ts"

export type { Backend } from "../domain/Config.ts"
export type { AdminState, HealthState } from "../domain/Health.ts"

/** The admin states, as the API names them. */
export const adminStates: ReadonlyArray<AdminState> = ["ready", "drain", "maintenance"]

/**
 * A backend as the registry holds it. The fields are live: a balancer reads
 * `activeConnections` at the moment it picks.
 */
export interface BackendStatus extends BackendView {
  readonly state: HealthState
  /** False once the backend has left the pool; it is kept until its last connection closes. */
  readonly member: boolean
  /** When the state last changed (or the backend joined), in milliseconds since the epoch. */
  readonly since: number
  /** What an operator set; `ready` unless changed. */
  readonly admin: AdminState
}

/** What the balancer reads: the members, the ones to pick from, and the generation of the membership. */
export interface Selection {
  /** Every member, in the order they were given. */
  readonly members: ReadonlyArray<BackendStatus>
  /** The members that may be picked now, in the same order. */
  readonly eligible: ReadonlyArray<BackendStatus>
  /** Changes whenever the membership or a configured weight changes (never with health alone). */
  readonly generation: number
}

/** What changed in the registry. */
export type RegistryChange = Data.TaggedEnum<{
  Added: { readonly backend: Backend }
  Removed: { readonly backend: Backend }
  Reweighted: { readonly backend: Backend }
  StateChanged: { readonly backend: Backend; readonly state: HealthState }
  AdminChanged: { readonly backend: Backend; readonly admin: AdminState }
}>

/** Constructors and matchers for {@link RegistryChange}. */
export const RegistryChange = Data.taggedEnum<RegistryChange>()

/** What an update changed, by address. */
export interface RegistryUpdate {
  readonly added: ReadonlyArray<string>
  readonly removed: ReadonlyArray<string>
  readonly reweighted: ReadonlyArray<string>
}

/** One connection's place in a backend's active count, held from the start of its dial. */
export interface Lease {
  readonly backend: BackendStatus
  /** Gives the place back; the second and later calls do nothing. Synchronous. */
  release(): void
  /**
   * Calls `callback` once if the backend turns UNHEALTHY while the lease is
   * held (`--close-on-unhealthy`); returns a function that cancels it.
   */
  whenDown(callback: () => void): () => void
}

/**
 * The registry of one pool. What a connection reads or takes on its way
 * (`selection`, `acquire`) is synchronous: it happens on every connection and
 * cannot fail.
 */
export class BackendRegistry extends Context.Service<BackendRegistry, {
  /** Every member, in the order they were given. */
  readonly all: Effect.Effect<ReadonlyArray<BackendStatus>>
  /** The members and the ones that may be picked now (the same object until something changes). */
  readonly selection: () => Selection
  /**
   * Replaces the membership: new addresses are added (HEALTHY), missing ones
   * leave, changed weights apply. Members that stay keep their health state,
   * streak and active connections; a backend that left is kept (not a
   * member) while connections to it are open, and comes back with its count
   * if it is added again.
   */
  readonly update: (backends: ReadonlyArray<Backend>) => Effect.Effect<RegistryUpdate>
  /**
   * Records one health result for a member (an active check's, or a failed
   * dial of a real connection) through the pool's thresholds, changing (and
   * logging) its state when one is reached, with the `reason` of the failure
   * that turned it UNHEALTHY. Results for addresses that are not members
   * are dropped.
   */
  readonly report: (address: string, success: boolean, reason?: string) => Effect.Effect<void>
  /** Counts one more active connection on a member, until the lease is released; undefined for an unknown address. */
  readonly acquire: (address: string) => Lease | undefined
  /** A member by address, or undefined. */
  readonly get: (address: string) => BackendStatus | undefined
  /**
   * Sets a member's admin state (logged as `backend HOST:PORT admin drain`);
   * it holds across updates while the backend stays. Undefined for an
   * unknown address.
   */
  readonly setAdmin: (address: string, admin: AdminState) => Effect.Effect<BackendStatus | undefined>
  /** Sets the weight in force of a member until {@link resetWeights}; undefined for an unknown address. */
  readonly setWeight: (address: string, weight: number) => Effect.Effect<BackendStatus | undefined>
  /** Gives every member its configured weight back (a reload names the backends again). */
  readonly resetWeights: Effect.Effect<void>
  /**
   * Active connections held elsewhere (by worker `source`), by address: they
   * add to each backend's `activeConnections`, replacing what `source`
   * reported before; `undefined` forgets `source` (the worker is gone).
   */
  readonly countRemote: (source: number, counts: ReadonlyMap<string, number> | undefined) => void
  /**
   * Subscribes to changes: the stream delivers every change made after the
   * subscription, so subscribe first and then read `all` to miss none.
   */
  readonly subscribe: Effect.Effect<Stream.Stream<RegistryChange>, never, Scope.Scope>
}>()("effect-tcp-proxy/BackendRegistry") {}
