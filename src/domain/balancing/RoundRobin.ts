/**
 * `round-robin`: smooth weighted round robin (as nginx does it). Each pick
 * adds every backend's weight to its running score, takes the highest score
 * and subtracts the total weight from it, so a backend of weight 3 against
 * one of weight 1 gets picks A A B A, A A B A, ... interleaved, not in bursts.
 *
 * @since 0.1.0
 */
import type { BackendView, Strategy } from "./Strategy.ts"

/** A fresh round robin; its scores live as long as the strategy, and are forgotten for backends that leave. */
export const roundRobin = <V extends BackendView>(): Strategy<V> => {
  const scores = new Map<string, number>()
  let generation = -1
  const score = (view: V) => scores.get(view.backend.address) ?? 0
  return {
    order: (eligible, context) => {
      if (context.generation !== generation) {
        generation = context.generation
        const known = new Set(context.members.map((view) => view.backend.address))
        for (const address of scores.keys()) if (!known.has(address)) scores.delete(address)
      }
      if (eligible.length === 0) return eligible
      let total = 0
      let best = eligible[0]!
      for (const view of eligible) {
        total += view.weight
        scores.set(view.backend.address, score(view) + view.weight)
        if (score(view) > score(best)) best = view
      }
      scores.set(best.backend.address, score(best) - total)
      if (eligible.length === 1) return [best]
      // Retries take the next highest scores: the backends round robin would pick next.
      return [best, ...eligible.filter((view) => view !== best).sort((a, b) => score(b) - score(a))]
    }
  }
}
