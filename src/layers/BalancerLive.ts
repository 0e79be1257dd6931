/**
 * The balancers `--lb` names, as layers of {@link Balancer}.
 *
 * @since 0.1.0
 */
import { Effect, Layer, Random } from "effect"
import type { Backend, BalancerName } from "../domain/Config.ts"
import { Balancer } from "../services/Balancer.ts"
import { BackendRegistry, type BackendStatus } from "../services/BackendRegistry.ts"

/** A source of uniform numbers in [0, 1). */
type Uniform = () => number

/**
 * Orders backends by a weighted random draw without replacement
 * (Efraimidis-Spirakis): each backend comes first with probability
 * weight / total weight, and so on down the list.
 */
export const weightedShuffle = (
  backends: ReadonlyArray<BackendStatus>,
  uniform: Uniform
): Array<BackendStatus> => {
  const keyed = backends.map((status) => ({ status, key: -Math.log(1 - uniform()) / status.backend.weight }))
  keyed.sort((a, b) => a.key - b.key)
  return keyed.map(({ status }) => status)
}

/** Active connections per unit of weight: what `p2c` (and `least-conn`) compare. */
export const load = (status: BackendStatus): number => status.activeConnections / status.backend.weight

/** `random`: weighted uniform; retries go to other backends in weighted random order. */
export const random = (backends: ReadonlyArray<BackendStatus>, uniform: Uniform): Array<BackendStatus> =>
  weightedShuffle(backends, uniform)

/**
 * `p2c`: two distinct weighted random picks, the one with fewer active
 * connections per unit of weight first, the other second, then the rest.
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

const strategies: Record<BalancerName, (backends: ReadonlyArray<BackendStatus>, uniform: Uniform) => Array<BackendStatus>> =
  { random, p2c: powerOfTwoChoices }

const toBackend = (status: BackendStatus): Backend => status.backend

/** A balancer that orders the registry's healthy backends with `strategy`, drawing from Effect's `Random`. */
export const make = (name: BalancerName): Layer.Layer<Balancer, never, BackendRegistry> =>
  Layer.effect(
    Balancer,
    Effect.gen(function*() {
      const registry = yield* BackendRegistry
      const strategy = strategies[name]
      return Balancer.of({
        candidates: () =>
          Effect.flatMap(registry.healthy, (healthy) =>
            Effect.withFiber((fiber) => {
              const random = fiber.getRef(Random.Random)
              return Effect.succeed(strategy(healthy, () => random.nextDoubleUnsafe()).map(toBackend))
            }))
      })
    })
  )
