/**
 * `random` and `p2c`.
 *
 * @since 0.1.0
 */
import { type BackendView, load, type Strategy, type Uniform, weightedShuffle } from "./Strategy.ts"

/** `random`: weighted uniform; retries go to the others in weighted random order. */
export const random = <V extends BackendView>(): Strategy<V> => ({
  order: (eligible, { uniform }) => weightedShuffle(eligible, uniform)
})

/**
 * Two distinct weighted random picks, the one with fewer active connections
 * per unit of weight first, the other second, then the rest.
 */
export const powerOfTwoChoices = <V extends BackendView>(backends: ReadonlyArray<V>, uniform: Uniform): Array<V> => {
  const order = weightedShuffle(backends, uniform)
  if (order.length >= 2 && load(order[1]!) < load(order[0]!)) {
    const first = order[0]!
    order[0] = order[1]!
    order[1] = first
  }
  return order
}

/** `p2c`: the power of two choices. */
export const p2c = <V extends BackendView>(): Strategy<V> => ({
  order: (eligible, { uniform }) => powerOfTwoChoices(eligible, uniform)
})
