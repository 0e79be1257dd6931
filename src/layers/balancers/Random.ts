/**
 * `random` and `p2c`.
 *
 * @since 0.1.0
 */
import type { BackendStatus } from "../../services/BackendRegistry.ts"
import { load, type Strategy, type Uniform, weightedShuffle } from "./Strategy.ts"

/** `random`: weighted uniform; retries go to the others in weighted random order. */
export const random = (): Strategy => ({ order: (healthy, { uniform }) => weightedShuffle(healthy, uniform) })

/**
 * Two distinct weighted random picks, the one with fewer active connections
 * per unit of weight first, the other second, then the rest.
 */
export const powerOfTwoChoices = (backends: ReadonlyArray<BackendStatus>, uniform: Uniform): Array<BackendStatus> => {
  const order = weightedShuffle(backends, uniform)
  if (order.length >= 2 && load(order[1]!) < load(order[0]!)) {
    const first = order[0]!
    order[0] = order[1]!
    order[1] = first
  }
  return order
}

/** `p2c`: the power of two choices. */
export const p2c = (): Strategy => ({ order: (healthy, { uniform }) => powerOfTwoChoices(healthy, uniform) })
