/**
 * The backends the proxy relays to: their weights, health states and active
 * connection counts, the healthy set the balancers pick from, and a stream of
 * changes for whoever follows them (health monitors, metrics).
 *
 * @since 0.1.0
 */
import * as Context from "effect/Context"
import * as Data from "effect/Data"
import type * as Effect from "effect/Effect"
import type * as Scope from "effect/Scope"
import type * as Stream from "effect/Stream"
import type { Backend } from "../domain/Config.ts"

export type { Backend } from "../domain/Config.ts"

/** A backend's health: every backend starts HEALTHY. */
export type HealthState = "HEALTHY" | "UNHEALTHY"

/**
 * A backend as the registry sees it now. The fields are live: a balancer
 * reads `activeConnections` at the moment it picks.
 */
export interface BackendStatus {
  readonly backend: Backend
  readonly state: HealthState
  readonly activeConnections: number
}

/** What changed in the registry. */
export type RegistryChange = Data.TaggedEnum<{
  Added: { readonly backend: Backend }
  Removed: { readonly backend: Backend }
  Reweighted: { readonly backend: Backend }
  StateChanged: { readonly backend: Backend; readonly state: HealthState }
}>

/** Constructors and matchers for {@link RegistryChange}. */
export const RegistryChange = Data.taggedEnum<RegistryChange>()

/** What an update changed, by address. */
export interface RegistryUpdate {
  readonly added: ReadonlyArray<string>
  readonly removed: ReadonlyArray<string>
  readonly reweighted: ReadonlyArray<string>
}

/** The registry of backends. */
export class BackendRegistry extends Context.Service<BackendRegistry, {
  /**
   * Every backend, in the order they were given. The array is replaced only
   * when the membership or a weight changes, so it can key a cache (the hash
   * ring); health states and counts are read live from its items.
   */
  readonly all: Effect.Effect<ReadonlyArray<BackendStatus>>
  /** The HEALTHY backends, in the order they were given. */
  readonly healthy: Effect.Effect<ReadonlyArray<BackendStatus>>
  /**
   * Replaces the backend list: new addresses are added (HEALTHY), missing ones
   * removed, changed weights applied. Unchanged backends keep their health
   * state and active counts; connections to removed ones are left to finish.
   */
  readonly update: (backends: ReadonlyArray<Backend>) => Effect.Effect<RegistryUpdate>
  /** Sets a backend's health; returns whether it changed (unknown addresses change nothing). */
  readonly setState: (address: string, state: HealthState) => Effect.Effect<boolean>
  /** Counts one more active connection on a backend; call it when the dial starts. */
  readonly connectionOpened: (address: string) => Effect.Effect<void>
  /** Counts one active connection less on a backend. */
  readonly connectionClosed: (address: string) => Effect.Effect<void>
  /**
   * Subscribes to changes: the stream delivers every change made after the
   * subscription, so subscribe first and then read `all` to miss none.
   */
  readonly subscribe: Effect.Effect<Stream.Stream<RegistryChange>, never, Scope.Scope>
}>()("effect-tcp-proxy/BackendRegistry") {}
