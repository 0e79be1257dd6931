/**
 * SNI routes over pools: the top-level pool (the services in context) is the
 * default route; each configured route gets a pool of its own (registry,
 * discovery, balancer, health checks), built in its own scope and rebuilt
 * when a reload changes the routes. Certificates (and the backend CA) are re-read on every reload;
 * connections already open keep what they started with.
 *
 * @since 0.1.0
 */
import type { SecureContext } from "node:tls"
import * as Context from "effect/Context"
import * as Effect from "effect/Effect"
import * as Exit from "effect/Exit"
import * as Layer from "effect/Layer"
import * as Option from "effect/Option"
import * as Scope from "effect/Scope"
import * as ClientHello from "../domain/ClientHello.ts"
import type { ProxyConfig, Route } from "../domain/Config.ts"
import { Balancer } from "../services/Balancer.ts"
import { BackendRegistry } from "../services/BackendRegistry.ts"
import type { HealthCheck } from "../services/HealthCheck.ts"
import { HealthMonitor } from "../services/HealthMonitor.ts"
import type { Metrics } from "../services/Metrics.ts"
import type { Resolver } from "../services/Resolver.ts"
import { type Pool, Routes, type Target, type TlsConfigError } from "../services/Routes.ts"
import { Settings } from "../services/Settings.ts"
import * as BackendRegistryLive from "./BackendRegistryLive.ts"
import * as BalancerLive from "./balancers/BalancerLive.ts"
import * as DiscoveryLive from "./DiscoveryLive.ts"
import * as HealthMonitorLive from "./HealthMonitorLive.ts"
import { certificateAuthority, secureContext } from "./Tls.ts"

/** The pool of route number `index`: its backends and balancer come from that route of the settings. */
const poolLayer = (index: number) => {
  const route = (config: ProxyConfig): Route | undefined => config.routes[index]
  return Layer.mergeAll(
    HealthMonitorLive.layer,
    BalancerLive.following((config) =>
      Option.getOrElse(route(config)?.balancer ?? Option.none(), () => config.balancer)
    )
  ).pipe(
    Layer.provideMerge(DiscoveryLive.make((config) => route(config)?.backends ?? [])),
    Layer.provideMerge(BackendRegistryLive.layer([]))
  )
}

/** A route in force: its names and mode, its pool and the scope the pool lives in. */
interface Installed {
  readonly sni: ReadonlyArray<string>
  readonly route: Route
  readonly pool: Pool
  readonly scope: Scope.Closeable
}

/** What decides whether route pools must be rebuilt: everything but the certificates. */
const shape = (routes: ReadonlyArray<Route>): string =>
  JSON.stringify(routes.map((route) => [route.sni, route.mode, Option.getOrNull(route.balancer), route.backends]))

/** The routes of the settings, over the top-level pool in context. */
export const layer: Layer.Layer<
  Routes,
  TlsConfigError,
  BackendRegistry | Balancer | HealthMonitor | Settings | Metrics | HealthCheck | Resolver
> = Layer.effect(
  Routes,
  Effect.gen(function*() {
    const defaultPool: Pool = {
      registry: yield* BackendRegistry,
      balancer: yield* Balancer,
      monitor: yield* HealthMonitor
    }
    const settings = yield* Settings
    const context = yield* Effect.context<Settings | Metrics | HealthCheck | Resolver>()
    let installed: ReadonlyArray<Installed> = []
    let installedShape = shape([])
    // What `select` answers, derived once per reload: a target per route, and the default one.
    let targets: ReadonlyArray<{ readonly sni: ReadonlyArray<string>; readonly target: Target }> = []
    let fallback: Target = { mode: "plain", pool: defaultPool, context: undefined, upstreamTls: undefined }

    const buildPools = (routes: ReadonlyArray<Route>) =>
      Effect.forEach(routes, (route, index) =>
        Effect.gen(function*() {
          const scope = yield* Scope.make()
          const built = yield* Layer.buildWithScope(poolLayer(index), scope).pipe(Effect.provideContext(context))
          const pool: Pool = {
            registry: Context.get(built, BackendRegistry),
            balancer: Context.get(built, Balancer),
            monitor: Context.get(built, HealthMonitor)
          }
          return { sni: route.sni, route, pool, scope }
        }))

    const closeAll = (routes: ReadonlyArray<Installed>) =>
      Effect.forEach(routes, (route) => Scope.close(route.scope, Exit.void), { discard: true })

    const reload = Effect.fnUntraced(function*(config: ProxyConfig) {
      // Load every certificate first: a bad file changes nothing.
      const top = Option.isSome(config.tls) ? yield* secureContext(config.tls.value) : undefined
      const perRoute = yield* Effect.forEach(config.routes, (route) =>
        Option.isSome(route.tls) ? Effect.map(secureContext(route.tls.value), Option.some) : Effect.succeedNone)
      const ca = Option.isSome(config.backendCa) ? yield* certificateAuthority(config.backendCa.value) : undefined
      const nextShape = shape(config.routes)
      if (nextShape !== installedShape) {
        const previous = installed
        installed = yield* buildPools(config.routes)
        installedShape = nextShape
        yield* closeAll(previous)
      }
      const upstreamTls = config.backendTls ? { ca } : undefined
      const target = (mode: Target["mode"], pool: Pool, context: SecureContext | undefined): Target => ({
        mode,
        pool,
        context,
        upstreamTls: mode === "passthrough" ? undefined : upstreamTls
      })
      targets = installed.map((route, index) => ({
        sni: route.sni,
        target: target(route.route.mode, route.pool, Option.getOrElse(perRoute[index] ?? Option.none(), () => top))
      }))
      fallback = target(top !== undefined ? "terminate" : installed.length > 0 ? "passthrough" : "plain", defaultPool, top)
    })

    yield* reload(yield* settings.current)
    yield* Effect.addFinalizer(() => closeAll(installed))

    const select = (serverName: string | undefined): Effect.Effect<Target> =>
      Effect.sync(() =>
        targets.length === 0 ? fallback : ClientHello.selectRoute(targets, serverName)?.target ?? fallback
      )

    return Routes.of({ select, reload })
  })
)
