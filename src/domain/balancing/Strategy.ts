/**
 * What every balancing strategy is: a way to order the backends that may be
 * picked for one client, best first, over plain views of the backends (no
 * Effect, no IO), plus the helpers the weighted strategies share.
 *
 * @since 0.1.0
 */
import type { Backend } from "../Config.ts"

/** A backend as a strategy sees it. Live values: read them at the moment of the pick. */
export interface BackendView {
  readonly backend: Backend
  /** The weight in force now: the configured one, unless slow start or an operator changed it. */
  readonly weight: number
  /** Connections open (or dialling) to the backend now. */
  readonly activeConnections: number
  /** Whether it may be picked now: HEALTHY and in service (or a backup standing in for the others). */
  readonly eligible: boolean
}

/** The client a strategy picks for: IPv4-mapped addresses already shown as IPv4. */
export interface ClientView {
  readonly ip: string
  readonly port: number
}

/** A source of uniform numbers in [0, 1). */
export type Uniform = () => number

/** Everything a strategy may look at besides the backends to order. */
export interface PickContext<V extends BackendView> {
  /** Every member of the pool, eligible or not, in the order they were given. */
  readonly members: ReadonlyArray<V>
  /** Changes whenever the membership or a configured weight changes: state derived from `members` is rebuilt on it. */
  readonly generation: number
  readonly client: ClientView
  readonly uniform: Uniform
}

/** Orders the eligible backends for a client, best first; a strategy may keep state between calls. */
export interface Strategy<V extends BackendView> {
  readonly order: (eligible: ReadonlyArray<V>, context: PickContext<V>) => ReadonlyArray<V>
}

/**
 * Orders backends by a weighted random draw without replacement
 * (Efraimidis-Spirakis): each backend comes first with probability
 * weight / total weight, and so on down the list.
 */
export const weightedShuffle = <V extends BackendView>(backends: ReadonlyArray<V>, uniform: Uniform): Array<V> => {
  if (backends.length === 1) return [backends[0]!]
  const keyed = backends.map((view) => ({ view, key: -Math.log(1 - uniform()) / view.weight }))
  keyed.sort((a, b) => a.key - b.key)
  return keyed.map(({ view }) => view)
}

/** Active connections per unit of weight: what `p2c` and `least-conn` compare. */
export const load = (view: BackendView): number => view.activeConnections / view.weight
