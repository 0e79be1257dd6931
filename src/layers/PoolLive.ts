/**
 * A pool of backends, built the same way for the default backends and for
 * every SNI route: its settings, its registry (the one record of each
 * backend), its discovery (names in DNS), its health checks and its
 * balancer, behind the one operation a connection uses, `connect`.
 *
 * @since 0.1.0
 */
import * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
import * as Layer from "effect/Layer"
import type * as Scope from "effect/Scope"
import * as SubscriptionRef from "effect/SubscriptionRef"
import type { Backend, PoolConfig } from "../domain/Config.ts"
import { Balancer } from "../services/Balancer.ts"
import { BackendRegistry, type BackendStatus } from "../services/BackendRegistry.ts"
import { Dialer } from "../services/Dialer.ts"
import { Discovery } from "../services/Discovery.ts"
import type { HealthCheck } from "../services/HealthCheck.ts"
import { Metrics } from "../services/Metrics.ts"
import {
  type ConnectError,
  type ConnectRequest,
  DialFailed,
  LocalResource,
  NoBackend,
  Pool,
  PoolSettings,
  type Upstream
} from "../services/Pool.ts"
import type { Resolver } from "../services/Resolver.ts"
import type { Settings } from "../services/Settings.ts"
import * as BackendRegistryLive from "./BackendRegistryLive.ts"
import * as BalancerLive from "./BalancerLive.ts"
import * as DiscoveryLive from "./DiscoveryLive.ts"
import * as HealthMonitorLive from "./HealthMonitorLive.ts"

/** Layers that replace a pool's own parts; they apply to every pool. */
export interface PoolOverrides {
  /** A registry fed by someone else: the pool then does no discovery of its own. */
  readonly registry?: Layer.Layer<BackendRegistry, never, PoolSettings | Metrics> | undefined
  readonly balancer?: Layer.Layer<Balancer, never, BackendRegistry | PoolSettings> | undefined
}

const noBackend = new NoBackend()

/** The pool over the parts in context: registry, balancer, discovery. */
const make = Effect.gen(function*() {
  const registry = yield* BackendRegistry
  const balancer = yield* Balancer
  const discovery = yield* Discovery
  const dialer = yield* Dialer
  const metrics = yield* Metrics
  const settings = yield* PoolSettings
  /** When each backend's last failed dial was logged: at most once per health interval. */
  const lastLogged = new WeakMap<BackendStatus, number>()

  /** Accounts for a failed dial; fails with what the connection will end with if it was the last try. */
  const failed = (
    backend: BackendStatus,
    reason: string,
    local: boolean,
    seconds: number
  ): Effect.Effect<never, DialFailed | LocalResource> => {
    const address = backend.backend.address
    if (local) {
      return metrics.dialed(address, seconds, false).pipe(
        Effect.andThen(Effect.logError(`dial ${address} failed: ${reason}`)),
        Effect.andThen(Effect.fail(new LocalResource({ backend: address, code: reason })))
      )
    }
    const now = Date.now()
    const interval = Duration.toMillis(SubscriptionRef.getUnsafe(settings).health.interval)
    const previous = lastLogged.get(backend)
    const log = previous !== undefined && now - previous < interval ? Effect.void : Effect.suspend(() => {
      lastLogged.set(backend, now)
      return Effect.logWarning(`dial ${address} failed: ${reason}`)
    })
    return metrics.dialed(address, seconds, false).pipe(
      Effect.andThen(registry.report(address, false)),
      Effect.andThen(log),
      Effect.andThen(Effect.fail(new DialFailed({ backend: address, reason })))
    )
  }

  /** Dials one candidate: the lease is held from now until the scope closes (or the dial fails). */
  const dialOne = (request: ConnectRequest, candidate: Backend): Effect.Effect<Upstream, ConnectError, Scope.Scope> =>
    Effect.flatMap(registry.acquire(candidate.address), (lease): Effect.Effect<Upstream, ConnectError, Scope.Scope> => {
      if (lease === undefined) return Effect.fail(noBackend)
      const backend = lease.backend
      const started = performance.now()
      let upstream: Upstream | undefined
      const close = Effect.suspend(() => {
        if (upstream === undefined) return lease.release
        const { connection, socket } = upstream
        socket.destroy()
        connection.destroy()
        return Effect.andThen(
          metrics.transferred(backend.backend.address, connection.bytesWritten, connection.bytesRead),
          lease.release
        )
      })
      const connected = Effect.flatMap(dialer.dial(backend.backend, request.dialTimeoutMs), (connection) => {
        if (request.preamble !== undefined) connection.write(request.preamble)
        if (request.tls === undefined) {
          upstream = { backend, connection, socket: connection }
          return Effect.succeed(upstream)
        }
        return Effect.map(
          Effect.onError(request.tls.originate(connection, backend.backend, request.dialTimeoutMs), () =>
            Effect.sync(() => connection.destroy())),
          (socket) => (upstream = { backend, connection, socket })
        )
      })
      return Effect.addFinalizer(() => close).pipe(
        Effect.andThen(connected),
        Effect.matchEffect({
          onSuccess: (connectedTo) =>
            Effect.as(metrics.dialed(backend.backend.address, (performance.now() - started) / 1000, true), connectedTo),
          onFailure: (error) =>
            Effect.andThen(
              lease.release,
              failed(
                backend,
                error._tag === "DialError" ? error.message : error.reason,
                error._tag === "DialError" && error.reason === "local",
                (performance.now() - started) / 1000
              )
            )
        })
      )
    })

  /** Dials the candidates from `index` on until one connects; a local failure stops the retries. */
  const attempt = (
    request: ConnectRequest,
    candidates: ReadonlyArray<Backend>,
    index: number,
    attempts: number
  ): Effect.Effect<Upstream, ConnectError, Scope.Scope> =>
    Effect.catchTag(
      dialOne(request, candidates[index]!),
      "DialFailed",
      (error) => index + 1 < attempts ? attempt(request, candidates, index + 1, attempts) : Effect.fail(error)
    )

  return Pool.of({
    registry,
    connect: (request) =>
      Effect.flatMap(balancer.candidates(request.client), (candidates) =>
        candidates.length === 0
          ? Effect.fail(noBackend)
          : attempt(request, candidates, 0, Math.min(candidates.length, request.retries + 1))),
    prepare: (config) => Effect.map(discovery.resolve(config.backends), (backends) => ({ config, backends })),
    commit: (prepared) =>
      Effect.andThen(SubscriptionRef.set(settings, prepared.config), discovery.apply(prepared.backends))
  })
})

/**
 * A pool built from `config`, over the services every pool shares (the
 * running settings, metrics, dialer, health check and resolver). Its parts
 * are its own, whatever else was built with the same layers (`Layer.fresh`):
 * each pool has its registry, checks, discovery and balancer. Closing its
 * scope stops its checks and discovery.
 */
export const layer = (
  config: PoolConfig,
  overrides: PoolOverrides = {}
): Layer.Layer<Pool, never, Settings | Metrics | Dialer | HealthCheck | Resolver> => {
  const registry = overrides.registry ?? BackendRegistryLive.layer([])
  const discovery = overrides.registry === undefined ? DiscoveryLive.layer : DiscoveryLive.none
  const parts = Layer.mergeAll(
    discovery,
    overrides.balancer ?? BalancerLive.layer,
    HealthMonitorLive.layer
  ).pipe(Layer.provideMerge(registry))
  return Layer.fresh(Layer.effect(Pool, make).pipe(
    Layer.provide(parts),
    Layer.provide(Layer.effect(PoolSettings, SubscriptionRef.make(config)))
  ))
}
