/**
 * `least-conn`: fewest active connections per unit of weight, ties broken at random.
 *
 * @since 0.1.0
 */
import { type BackendView, load, type Strategy, weightedShuffle } from "./Strategy.ts"

/** Orders by load; a weighted shuffle first makes the (stable) sort break ties at random. */
export const leastConn = <V extends BackendView>(): Strategy<V> => ({
  order: (eligible, { uniform }) => weightedShuffle(eligible, uniform).sort((a, b) => load(a) - load(b))
})
