/**
 * `round-robin`: smooth weighted round robin (as nginx does it). Each pick
 * adds every backend's weight to its running score, takes the highest score
 * and subtracts the total weight from it, so a backend of weight 3 against
 * one of weight 1 gets picks A A B A, A A B A, ... interleaved, not in bursts.
 *
 * @since 0.1.0
 */
import type { BackendStatus } from "../../services/BackendRegistry.ts"
import type { Strategy } from "./Strategy.ts"

/** A fresh round robin; its scores live as long as the balancer. */
export const roundRobin = (): Strategy => {
  const scores = new Map<string, number>()
  const score = (status: BackendStatus) => scores.get(status.backend.address) ?? 0
  return {
    order: (healthy, { all }) => {
      if (healthy.length === 0) return healthy
      if (scores.size > all.length) {
        // Forget the scores of backends that have left the registry.
        const known = new Set(all.map((status) => status.backend.address))
        for (const address of scores.keys()) if (!known.has(address)) scores.delete(address)
      }
      let total = 0
      let best = healthy[0]!
      for (const status of healthy) {
        total += status.backend.weight
        scores.set(status.backend.address, score(status) + status.backend.weight)
        if (score(status) > score(best)) best = status
      }
      scores.set(best.backend.address, score(best) - total)
      // Retries take the next highest scores: the backends round robin would pick next.
      return [best, ...healthy.filter((status) => status !== best).sort((a, b) => score(b) - score(a))]
    }
  }
}
