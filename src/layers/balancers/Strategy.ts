/**
 * What every balancing strategy is: a way to order the healthy backends for
 * one client, best first, plus the helpers the weighted ones share.
 *
 * @since 0.1.0
 */
import type { ClientInfo } from "../../services/Balancer.ts"
import type { BackendStatus } from "../../services/BackendRegistry.ts"

/** A source of uniform numbers in [0, 1). */
export type Uniform = () => number

/** Orders backends for a client; a strategy may keep state between calls. */
export interface Strategy {
  readonly order: (
    healthy: ReadonlyArray<BackendStatus>,
    context: { readonly all: ReadonlyArray<BackendStatus>; readonly client: ClientInfo; readonly uniform: Uniform }
  ) => ReadonlyArray<BackendStatus>
}

/**
 * Orders backends by a weighted random draw without replacement
 * (Efraimidis-Spirakis): each backend comes first with probability
 * weight / total weight, and so on down the list.
 */
export const weightedShuffle = (backends: ReadonlyArray<BackendStatus>, uniform: Uniform): Array<BackendStatus> => {
  const keyed = backends.map((status) => ({ status, key: -Math.log(1 - uniform()) / status.backend.weight }))
  keyed.sort((a, b) => a.key - b.key)
  return keyed.map(({ status }) => status)
}

/** Active connections per unit of weight: what `p2c` and `least-conn` compare. */
export const load = (status: BackendStatus): number => status.activeConnections / status.backend.weight
