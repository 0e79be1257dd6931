/**
 * The balancers `--lb` names, as layers of {@link Balancer}: each orders the
 * registry's eligible backends with a strategy of `domain/balancing`,
 * drawing randomness from Effect's `Random` (so tests can seed it).
 *
 * @since 0.1.0
 */
import * as Effect from "effect/Effect"
import * as Layer from "effect/Layer"
import * as Random from "effect/Random"
import * as SubscriptionRef from "effect/SubscriptionRef"
import * as Strategies from "../domain/balancing/Strategies.ts"
import type { Strategy } from "../domain/balancing/Strategy.ts"
import type { BalancerName } from "../domain/Config.ts"
import { Balancer, type ClientView } from "../services/Balancer.ts"
import { BackendRegistry, type BackendStatus } from "../services/BackendRegistry.ts"
import { PoolSettings } from "../services/Pool.ts"

const toBackend = (status: BackendStatus) => status.backend

/** A balancer over the registry, with the strategy `current` gives at each pick. */
const over = (registry: BackendRegistry["Service"], current: () => Strategy<BackendStatus>) => {
  // The source of uniform numbers of the fiber's Random, made again only when that changes.
  let random: Random.Random | undefined
  let uniform = () => 0
  return Balancer.of({
    candidates: (client: ClientView) =>
      Effect.withFiber((fiber) => {
        const selection = registry.selection()
        const fiberRandom = fiber.getRef(Random.Random)
        if (fiberRandom !== random) {
          random = fiberRandom
          uniform = () => fiberRandom.nextDoubleUnsafe()
        }
        const ordered = current().order(selection.eligible, {
          members: selection.members,
          generation: selection.generation,
          client,
          uniform
        })
        return Effect.succeed(ordered.map(toBackend))
      })
  })
}

/** A balancer over the registry with the named strategy, whatever the settings say. */
export const make = (name: BalancerName): Layer.Layer<Balancer, never, BackendRegistry> =>
  Layer.effect(
    Balancer,
    BackendRegistry.useSync((registry) => {
      const strategy = Strategies.make<BackendStatus>(name)
      return over(registry, () => strategy)
    })
  )

/**
 * The balancer the pool's settings name, following reloads. Each strategy is
 * made once, on first use, and keeps its state (round robin's scores, the
 * hash ring) from then on.
 */
export const layer: Layer.Layer<Balancer, never, BackendRegistry | PoolSettings> = Layer.effect(
  Balancer,
  Effect.gen(function*() {
    const registry = yield* BackendRegistry
    const settings = yield* PoolSettings
    const made = new Map<BalancerName, Strategy<BackendStatus>>()
    return over(registry, () => {
      const name = SubscriptionRef.getUnsafe(settings).balancer
      let strategy = made.get(name)
      if (strategy === undefined) {
        strategy = Strategies.make(name)
        made.set(name, strategy)
      }
      return strategy
    })
  })
)
