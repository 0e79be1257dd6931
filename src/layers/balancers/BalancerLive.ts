/**
 * The balancers `--lb` names, as layers of {@link Balancer}: each orders the
 * registry's HEALTHY backends with its strategy, drawing randomness from
 * Effect's `Random` (so tests can seed it).
 *
 * @since 0.1.0
 */
import { Effect, Layer, Random } from "effect"
import type { Backend, BalancerName } from "../../domain/Config.ts"
import { Balancer } from "../../services/Balancer.ts"
import { BackendRegistry, type BackendStatus } from "../../services/BackendRegistry.ts"
import { consistentHash } from "./ConsistentHash.ts"
import { leastConn } from "./LeastConn.ts"
import { p2c, random } from "./Random.ts"
import { roundRobin } from "./RoundRobin.ts"
import type { Strategy } from "./Strategy.ts"

const strategies: Record<BalancerName, () => Strategy> = {
  random,
  p2c,
  "round-robin": roundRobin,
  "least-conn": leastConn,
  hash: consistentHash
}

const toBackend = (status: BackendStatus): Backend => status.backend

/** A balancer over the registry with the named strategy. */
export const make = (name: BalancerName): Layer.Layer<Balancer, never, BackendRegistry> =>
  Layer.effect(
    Balancer,
    Effect.gen(function*() {
      const registry = yield* BackendRegistry
      const strategy = strategies[name]()
      return Balancer.of({
        candidates: (client) =>
          Effect.flatMap(registry.all, (all) =>
            Effect.flatMap(registry.healthy, (healthy) =>
              Effect.withFiber((fiber) => {
                const random = fiber.getRef(Random.Random)
                const uniform = () => random.nextDoubleUnsafe()
                return Effect.succeed(strategy.order(healthy, { all, client, uniform }).map(toBackend))
              })))
      })
    })
  )
