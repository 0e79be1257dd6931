/**
 * The balancers `--lb` names, as layers of {@link Balancer}: each orders the
 * registry's HEALTHY backends with its strategy, drawing randomness from
 * Effect's `Random` (so tests can seed it).
 *
 * @since 0.1.0
 */
import * as Effect from "effect/Effect"
import * as Layer from "effect/Layer"
import * as Random from "effect/Random"
import type { Backend, BalancerName, ProxyConfig } from "../../domain/Config.ts"
import { Balancer, type ClientInfo } from "../../services/Balancer.ts"
import { BackendRegistry, type BackendStatus } from "../../services/BackendRegistry.ts"
import { Settings } from "../../services/Settings.ts"
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

/** Orders the registry's backends for a client with `strategy`. */
const candidates = (registry: BackendRegistry["Service"], strategy: Effect.Effect<Strategy>) => (client: ClientInfo) =>
  Effect.flatMap(strategy, (strategy) =>
    Effect.flatMap(registry.all, (all) =>
      Effect.flatMap(registry.healthy, (healthy) =>
        Effect.withFiber((fiber) => {
          const random = fiber.getRef(Random.Random)
          const uniform = () => random.nextDoubleUnsafe()
          return Effect.succeed(strategy.order(healthy, { all, client, uniform }).map(toBackend))
        }))))

/** A balancer over the registry with the named strategy, whatever the settings say. */
export const make = (name: BalancerName): Layer.Layer<Balancer, never, BackendRegistry> =>
  Layer.effect(
    Balancer,
    Effect.gen(function*() {
      const registry = yield* BackendRegistry
      return Balancer.of({ candidates: candidates(registry, Effect.succeed(strategies[name]())) })
    })
  )

/**
 * The balancer that `select` names from the settings, following reloads.
 * Each strategy is made once, on first use, and keeps its state (round
 * robin's scores, the hash ring) from then on.
 */
export const following = (
  select: (config: ProxyConfig) => BalancerName
): Layer.Layer<Balancer, never, BackendRegistry | Settings> =>
  Layer.effect(
    Balancer,
    Effect.gen(function*() {
      const registry = yield* BackendRegistry
      const settings = yield* Settings
      const made = new Map<BalancerName, Strategy>()
      const current = Effect.map(settings.current, (config) => {
        const balancer = select(config)
        let strategy = made.get(balancer)
        if (strategy === undefined) {
          strategy = strategies[balancer]()
          made.set(balancer, strategy)
        }
        return strategy
      })
      return Balancer.of({ candidates: candidates(registry, current) })
    })
  )

/** The balancer `--lb` names, following reloads. */
export const layer: Layer.Layer<Balancer, never, BackendRegistry | Settings> = following((config) => config.balancer)
