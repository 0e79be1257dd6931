/**
 * Discovery over the resolver: each backend given by host name becomes one
 * backend per address in the answer (sharing the weight, and keeping the
 * name for `/backends`), added and removed as the answer changes; an answer
 * that fails keeps the last good set. Names are resolved when the pool is
 * built, every `--dns-refresh` while the pool names one, and on every reload.
 *
 * @since 0.1.0
 */
import * as Effect from "effect/Effect"
import * as Layer from "effect/Layer"
import * as Schedule from "effect/Schedule"
import * as SubscriptionRef from "effect/SubscriptionRef"
import * as Address from "../domain/Address.ts"
import { type Backend, isNamed } from "../domain/Config.ts"
import { BackendRegistry } from "../services/BackendRegistry.ts"
import { Discovery } from "../services/Discovery.ts"
import { PoolSettings } from "../services/Pool.ts"
import { Resolver } from "../services/Resolver.ts"
import { Settings } from "../services/Settings.ts"

/** Discovery that feeds the pool's registry from the pool's configured backends. */
export const layer: Layer.Layer<Discovery, never, BackendRegistry | Resolver | PoolSettings | Settings> = Layer.effect(
  Discovery,
  Effect.gen(function*() {
    const registry = yield* BackendRegistry
    const resolver = yield* Resolver
    const pool = yield* PoolSettings
    const settings = yield* Settings
    /** The last good answer for each name (`HOST:PORT` as configured). */
    const lastGood = new Map<string, ReadonlyArray<string>>()

    const expand = (backend: Backend): Effect.Effect<ReadonlyArray<Backend>> =>
      !isNamed(backend) ? Effect.succeed([backend]) : resolver.resolve(backend.host).pipe(
        Effect.tap((addresses) => Effect.sync(() => lastGood.set(backend.address, addresses))),
        Effect.catch((error) =>
          Effect.as(
            Effect.logWarning(`${error.message}; keeping the last good answer`),
            lastGood.get(backend.address) ?? []
          )
        ),
        Effect.map((addresses) =>
          addresses.map((ip) => ({
            address: Address.format(ip, backend.port),
            host: ip,
            port: backend.port,
            weight: backend.weight,
            name: backend.address
          }))
        )
      )

    const resolve = (configured: ReadonlyArray<Backend>) =>
      Effect.suspend(() => {
        const names = new Set(configured.filter(isNamed).map((backend) => backend.address))
        for (const name of lastGood.keys()) if (!names.has(name)) lastGood.delete(name)
        return Effect.map(Effect.forEach(configured, expand, { concurrency: "unbounded" }), (expanded) => expanded.flat())
      })

    /** Re-resolves the pool's names, logging what changed. */
    const refresh = Effect.suspend(() => {
      const configured = SubscriptionRef.getUnsafe(pool).backends
      if (!configured.some(isNamed)) return Effect.void
      return resolve(configured).pipe(
        Effect.flatMap(registry.update),
        Effect.flatMap((update) =>
          update.added.length + update.removed.length === 0 ? Effect.void : Effect.logInfo("backends resolved anew").pipe(
            Effect.annotateLogs({ added: update.added.join(","), removed: update.removed.join(",") })
          )
        )
      )
    })

    yield* Effect.flatMap(resolve(SubscriptionRef.getUnsafe(pool).backends), registry.update)
    // Every dns-refresh, as the settings in force say at each turn.
    const everyRefresh = Schedule.spaced(0).pipe(
      Schedule.modifyDelay(() => Effect.map(SubscriptionRef.get(settings), (config) => config.dnsRefresh))
    )
    yield* Effect.forkScoped(Effect.schedule(refresh, everyRefresh))
    return Discovery.of({ resolve, apply: registry.update })
  })
)

/** No discovery: for a registry that someone else feeds. */
export const none: Layer.Layer<Discovery> = Layer.succeed(Discovery)({
  resolve: Effect.succeed,
  apply: () => Effect.succeed({ added: [], removed: [], reweighted: [] })
})
