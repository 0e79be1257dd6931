/**
 * `least-conn`: fewest active connections per unit of weight, ties broken at random.
 *
 * @since 0.1.0
 */
import { load, type Strategy, weightedShuffle } from "./Strategy.ts"

/** Orders by load; a weighted shuffle first makes the (stable) sort break ties at random. */
export const leastConn = (): Strategy => ({
  order: (healthy, { uniform }) => weightedShuffle(healthy, uniform).sort((a, b) => load(a) - load(b))
})
