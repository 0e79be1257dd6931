/**
 * Discovery over the resolver: each backend given by host name becomes one
 * backend per address in the answer (sharing the weight, and keeping the name
 * for `/backends`), added and removed as the answer changes; an answer that
 * fails keeps the last good set. Names are resolved at start, every
 * `--dns-refresh`, and on every reload.
 *
 * @since 0.1.0
 */
import * as Effect from "effect/Effect"
import * as Layer from "effect/Layer"
import * as Address from "../domain/Address.ts"
import { type Backend, isNamed, type ProxyConfig } from "../domain/Config.ts"
import { BackendRegistry, type RegistryUpdate } from "../services/BackendRegistry.ts"
import { Discovery } from "../services/Discovery.ts"
import { Resolver } from "../services/Resolver.ts"
import { Settings } from "../services/Settings.ts"

/** Discovery that feeds the registry from the backends `select` picks out of the settings. */
export const make = (
  select: (config: ProxyConfig) => ReadonlyArray<Backend>
): Layer.Layer<Discovery, never, BackendRegistry | Resolver | Settings> =>
  Layer.effect(
    Discovery,
    Effect.gen(function*() {
      const registry = yield* BackendRegistry
      const resolver = yield* Resolver
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

      const refresh: Effect.Effect<RegistryUpdate> = Effect.gen(function*() {
        const backends = select(yield* settings.current)
        const names = new Set(backends.filter(isNamed).map((backend) => backend.address))
        for (const name of lastGood.keys()) if (!names.has(name)) lastGood.delete(name)
        const expanded = yield* Effect.forEach(backends, expand, { concurrency: "unbounded" })
        return yield* registry.update(expanded.flat())
      })

      /** Re-resolves every `dns-refresh` while some backend is given by name, logging what changed. */
      const periodic = Effect.gen(function*() {
        const config = yield* settings.current
        const backends = select(config)
        yield* Effect.sleep(config.dnsRefresh)
        if (!backends.some(isNamed)) return
        const update = yield* refresh
        if (update.added.length + update.removed.length > 0) {
          yield* Effect.logInfo("backends resolved anew").pipe(Effect.annotateLogs({
            added: update.added.join(","),
            removed: update.removed.join(",")
          }))
        }
      }).pipe(Effect.forever)

      yield* refresh
      yield* Effect.forkScoped(periodic)
      return Discovery.of({ refresh })
    })
  )

/** Discovery of the top-level backends. */
export const layer: Layer.Layer<Discovery, never, BackendRegistry | Resolver | Settings> = make((config) => config.backends)

/** No discovery: for a registry that someone else feeds. */
export const none: Layer.Layer<Discovery> = Layer.succeed(Discovery)({
  refresh: Effect.succeed({ added: [], removed: [], reweighted: [] })
})
