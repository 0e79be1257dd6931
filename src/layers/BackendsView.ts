/**
 * The pools as `GET /backends` shows them, for the admin endpoint and the
 * dashboard's sampler alike: both read the pools' registries through this
 * one function, so what one shows the other does too.
 *
 * @since 0.1.0
 */
import * as Effect from "effect/Effect"
import type { AdminState, BackendStatus, HealthState } from "../services/BackendRegistry.ts"
import { Routes } from "../services/Routes.ts"
import { Draining } from "../services/Shutdown.ts"

/** A backend as `/backends` shows it. */
export interface BackendEntry {
  readonly address: string
  /** The `HOST:PORT` it was given as, for a backend found through DNS. */
  readonly name?: string
  readonly state: HealthState
  /** The weight in force. */
  readonly weight: number
  readonly activeConnections: number
  readonly admin: AdminState
  readonly backup: boolean
  /** When its state last changed (or it joined), ISO 8601. */
  readonly since: string
}

/** What `/backends` serves: the default pool's backends, the drain, and each SNI route's backends. */
export interface BackendsView {
  readonly backends: ReadonlyArray<BackendEntry>
  readonly draining: boolean
  readonly routes: ReadonlyArray<{ readonly sni: ReadonlyArray<string>; readonly backends: ReadonlyArray<BackendEntry> }>
}

/** A backend as `/backends` shows it. */
export const describeBackend = (status: BackendStatus): BackendEntry => ({
  address: status.backend.address,
  ...(status.backend.name === undefined ? {} : { name: status.backend.name }),
  state: status.state,
  weight: status.weight,
  activeConnections: status.activeConnections,
  admin: status.admin,
  backup: status.backend.backup === true,
  since: new Date(status.since).toISOString()
})

/** Every pool, as `/backends` shows it: the default pool first, then each route's. */
export const backendsView: Effect.Effect<BackendsView, never, Routes | Draining> = Effect.gen(function*() {
  const pools = yield* (yield* Routes).pools
  const listed = yield* Effect.forEach(pools, (routed) =>
    Effect.map(routed.pool.registry.all, (members) => ({ sni: routed.sni, backends: members.map(describeBackend) })))
  const [first, ...rest] = listed
  return {
    backends: first?.backends ?? [],
    draining: yield* (yield* Draining).isDraining,
    routes: rest.map((route) => ({ sni: route.sni ?? [], backends: route.backends }))
  }
})

/**
 * Each backend's health over every pool: UNHEALTHY when any pool holding it
 * says so (as `tcp_proxy_backend_healthy` reads it).
 */
export const states = (view: BackendsView): ReadonlyMap<string, HealthState> => {
  const result = new Map<string, HealthState>()
  for (const pool of [view.backends, ...view.routes.map((route) => route.backends)]) {
    for (const entry of pool) {
      if (result.get(entry.address) !== "UNHEALTHY") result.set(entry.address, entry.state)
    }
  }
  return result
}
