/**
 * The front door over the pools: the default pool (the `Pool` in context)
 * and a pool per SNI route, each built by `PoolLive` in a scope of its own.
 * A reload prepares everything first (certificates, names, the pools of new
 * routes) and then puts it in force at once: routes that stay keep their
 * pool, updated in place, so their backends keep health state, counters and
 * connections. The TLS code is loaded only when TLS is configured.
 *
 * @since 0.1.0
 */
import type * as Net from "node:net"
import type { SecureContext } from "node:tls"
import * as Context from "effect/Context"
import * as Effect from "effect/Effect"
import * as Exit from "effect/Exit"
import * as Layer from "effect/Layer"
import * as Option from "effect/Option"
import * as Scope from "effect/Scope"
import * as SubscriptionRef from "effect/SubscriptionRef"
import * as ClientHello from "../domain/ClientHello.ts"
import * as Config from "../domain/Config.ts"
import type { Dialer } from "../services/Dialer.ts"
import type { HealthCheck } from "../services/HealthCheck.ts"
import type { LogLimits } from "../services/LogLimits.ts"
import type { Metrics } from "../services/Metrics.ts"
import { Pool, type PreparedPool, type UpstreamTls } from "../services/Pool.ts"
import type { Resolver } from "../services/Resolver.ts"
import { type Entry, type RoutedPool, Routes, type RoutesUpdate, type TlsConfigError } from "../services/Routes.ts"
import { Settings } from "../services/Settings.ts"
import * as PoolLive from "./PoolLive.ts"

type TlsModule = typeof import("../net/Tls.ts")

/** Loads the TLS code when a configuration first needs it (later loads find it in the module cache). */
const loadTls = Effect.promise((): Promise<TlsModule> => import("../net/Tls.ts"))

/**
 * Where connections of a route (or of the default route) go, and how their
 * TLS is treated: `plain` (no TLS configured), `passthrough` (the TLS bytes
 * relayed as they are) or `terminate` (the handshake completed here).
 */
type Target =
  | { readonly mode: "plain" | "passthrough"; readonly pool: Pool["Service"]; readonly upstreamTls: UpstreamTls | undefined }
  | {
    readonly mode: "terminate"
    readonly pool: Pool["Service"]
    readonly context: SecureContext
    readonly upstreamTls: UpstreamTls | undefined
  }

/** A route in force: its names, its pool and the scope the pool lives in. */
interface Installed {
  readonly sni: ReadonlyArray<string>
  readonly pool: Pool["Service"]
  readonly scope: Scope.Closeable
}

/**
 * What the front door does, replaced as a whole by a reload: nothing
 * (`Direct`: every connection goes to the default pool as it is), or read
 * and route TLS.
 */
type Front =
  | { readonly _tag: "Direct"; readonly target: Target }
  | {
    readonly _tag: "Tls"
    readonly routes: ReadonlyArray<{ readonly sni: ReadonlyArray<string>; readonly target: Target }>
    readonly fallback: Target
    readonly tls: TlsModule
  }

/** Whether a configuration needs the TLS code at all. */
const needsTls = (config: Config.ProxyConfig): boolean =>
  Option.isSome(config.tls) || config.backendTls || config.routes.length > 0

/** The routes of the settings, over the default pool in context; route pools are built with `overrides`. */
export const layer = (
  overrides: PoolLive.PoolOverrides = {}
): Layer.Layer<Routes, TlsConfigError, Pool | Settings | Metrics | Dialer | HealthCheck | Resolver | LogLimits> =>
  Layer.effect(
    Routes,
    Effect.gen(function*() {
      const defaultPool = yield* Pool
      const settings = yield* Settings
      const shared = yield* Effect.context<Settings | Metrics | Dialer | HealthCheck | Resolver | LogLimits>()
      let installed: ReadonlyArray<Installed> = []
      let front: Front = { _tag: "Direct", target: { mode: "plain", pool: defaultPool, upstreamTls: undefined } }

      const buildPool = (config: Config.PoolConfig) =>
        Effect.gen(function*() {
          const scope = yield* Scope.make()
          const built = yield* Layer.buildWithScope(PoolLive.layer(config, overrides), scope).pipe(
            Effect.provideContext(shared)
          )
          return { pool: Context.get(built, Pool), scope }
        })

      const closeAll = (routes: ReadonlyArray<Installed>) =>
        Effect.forEach(routes, (route) => Scope.close(route.scope, Exit.void), { discard: true })

      /** Gets `config` ready (the default pool's too, unless it was just built from it) and returns its commit. */
      const prepareWith = (config: Config.ProxyConfig, withDefault: boolean) =>
        Effect.gen(function*() {
          // Certificates first: a file that cannot be used fails here, before anything is built.
          const tls = needsTls(config) ? yield* loadTls : undefined
          const top = tls !== undefined && Option.isSome(config.tls) ? yield* tls.secureContext(config.tls.value) : undefined
          const contexts: Array<SecureContext | undefined> = []
          for (const route of config.routes) {
            contexts.push(tls !== undefined && Option.isSome(route.tls) ? yield* tls.secureContext(route.tls.value) : top)
          }
          const ca = tls !== undefined && Option.isSome(config.backendCa)
            ? yield* tls.certificateAuthority(config.backendCa.value)
            : undefined
          const upstreamTls: UpstreamTls | undefined = tls === undefined || !config.backendTls ? undefined : {
            originate: (socket: Net.Socket, backend, timeoutMs) =>
              tls.originate(socket, Config.serverNameOf(backend), ca, timeoutMs)
          }

          const defaultPrepared: PreparedPool | undefined = withDefault
            ? yield* defaultPool.prepare(Config.defaultPool(config))
            : undefined
          // A route keeps its pool when it keeps one of its server names.
          const unused = [...installed]
          const plan: Array<{ readonly installed: Installed; readonly prepared: PreparedPool | undefined }> = []
          const added: Array<string> = []
          for (const route of config.routes) {
            const poolConfig = Config.routePool(config, route)
            const kept = unused.find((previous) => previous.sni.some((name) => route.sni.includes(name)))
            if (kept !== undefined) {
              unused.splice(unused.indexOf(kept), 1)
              plan.push({ installed: { ...kept, sni: route.sni }, prepared: yield* kept.pool.prepare(poolConfig) })
            } else {
              plan.push({ installed: { sni: route.sni, ...yield* buildPool(poolConfig) }, prepared: undefined })
              added.push(poolConfig.name)
            }
          }

          const target = (mode: Config.RouteMode | "plain", pool: Pool["Service"], context: SecureContext | undefined): Target =>
            mode === "terminate" && context !== undefined
              ? { mode, pool, context, upstreamTls }
              : mode === "plain"
              ? { mode, pool, upstreamTls }
              : { mode: "passthrough", pool, upstreamTls: undefined }
          const commit: Effect.Effect<RoutesUpdate> = Effect.gen(function*() {
            const backends = defaultPrepared === undefined
              ? { added: [], removed: [], reweighted: [] }
              : yield* defaultPool.commit(defaultPrepared)
            for (const step of plan) if (step.prepared !== undefined) yield* step.installed.pool.commit(step.prepared)
            installed = plan.map((step) => step.installed)
            const fallback = target(
              top !== undefined ? "terminate" : config.routes.length > 0 ? "passthrough" : "plain",
              defaultPool,
              top
            )
            front = tls === undefined || (config.routes.length === 0 && fallback.mode !== "terminate")
              ? { _tag: "Direct", target: fallback }
              : {
                _tag: "Tls",
                routes: config.routes.flatMap((route, i) => {
                  const pool = plan[i]?.installed.pool
                  return pool === undefined ? [] : [{ sni: route.sni, target: target(route.mode, pool, contexts[i]) }]
                }),
                fallback,
                tls
              }
            yield* closeAll(unused)
            return { backends, routesAdded: added, routesRemoved: unused.map((route) => route.sni.join(",")) }
          })
          return commit
        })

      yield* Effect.flatten(prepareWith(yield* SubscriptionRef.get(settings), false))
      yield* Effect.addFinalizer(() => closeAll(installed))

      /** The entry of a connection that goes to `target` as it is, its TLS (if any) passed through. */
      const as = (target: Target, socket: Net.Socket, replay: Buffer | undefined): Entry => ({
        pool: target.pool,
        downstream: socket,
        replay,
        upstreamTls: target.upstreamTls
      })

      const direct = (socket: Net.Socket): Entry | undefined =>
        front._tag === "Direct" ? as(front.target, socket, undefined) : undefined

      const enter = (socket: Net.Socket, timeoutMs: number) => {
        if (front._tag === "Direct") return Effect.succeed(as(front.target, socket, undefined))
        const { fallback, routes, tls } = front
        const terminate = (target: Extract<Target, { mode: "terminate" }>, prefix: Buffer | undefined) =>
          Effect.map(
            tls.terminate(socket, prefix, target.context, timeoutMs),
            (session): Entry => ({ pool: target.pool, downstream: session, replay: undefined, upstreamTls: target.upstreamTls })
          )
        if (routes.length === 0 && fallback.mode === "terminate") return terminate(fallback, undefined)
        return Effect.flatMap(tls.peekClientHello(socket, timeoutMs), (hello) => {
          const target = ClientHello.selectRoute(routes, hello.serverName)?.target ?? fallback
          return target.mode === "terminate"
            ? terminate(target, hello.prefix)
            : Effect.succeed(as(target, socket, hello.prefix))
        })
      }

      return Routes.of({
        enter,
        direct,
        pools: Effect.sync((): ReadonlyArray<RoutedPool> => [
          { sni: undefined, pool: defaultPool },
          ...installed.map((route) => ({ sni: route.sni, pool: route.pool }))
        ]),
        prepare: (config) => prepareWith(config, true)
      })
    })
  )
