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
import * as Scope from "effect/Scope"
import * as SubscriptionRef from "effect/SubscriptionRef"
import type { Backend, PoolConfig } from "../domain/Config.ts"
import { Balancer } from "../services/Balancer.ts"
import { BackendRegistry, type BackendStatus } from "../services/BackendRegistry.ts"
import { Dialer } from "../services/Dialer.ts"
import { Discovery } from "../services/Discovery.ts"
import type { HealthCheck } from "../services/HealthCheck.ts"
import { LogLimits } from "../services/LogLimits.ts"
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
import { SharedBufferReads } from "../net/SharedBufferReads.ts"
import * as BackendRegistryLive from "./BackendRegistryLive.ts"
import * as BalancerLive from "./BalancerLive.ts"
import * as DiscoveryLive from "./DiscoveryLive.ts"
import * as HealthMonitorLive from "./HealthMonitorLive.ts"

/** Layers that replace a pool's own parts; they apply to every pool. */
export interface PoolOverrides {
  /** A registry fed by someone else: the pool then does no discovery of its own. */
  readonly registry?: Layer.Layer<BackendRegistry, never, PoolSettings | Metrics> | undefined
  readonly balancer?: Layer.Layer<Balancer, never, BackendRegistry | PoolSettings> | undefined
  /** False: the pool runs no health checks; whoever feeds its registry owns the backends' health (a worker's control part). */
  readonly activeChecks?: boolean | undefined
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
  const logLimits = yield* LogLimits
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
    metrics.dialed(address, seconds, false)
    if (local) {
      return Effect.andThen(
        logLimits.log({
          kind: "out of a local resource",
          perSecond: 1,
          level: "error",
          message: `dial ${address} failed: ${reason}; not counted against the backend`
        }),
        Effect.fail(new LocalResource({ backend: address, reason }))
      )
    }
    const now = Date.now()
    const interval = Duration.toMillis(SubscriptionRef.getUnsafe(settings).health.interval)
    const previous = lastLogged.get(backend)
    const log = previous !== undefined && now - previous < interval ? Effect.void : Effect.suspend(() => {
      lastLogged.set(backend, now)
      return Effect.logWarning(`dial ${address} failed: ${reason}`)
    })
    return registry.report(address, false, reason).pipe(
      Effect.andThen(log),
      Effect.andThen(Effect.fail(new DialFailed({ backend: address, reason })))
    )
  }

  /**
   * Dials one candidate. Its active count is held from now until `scope`
   * closes (or the dial fails); closing the scope also closes the backend
   * connection and adds its bytes to the backend's counters.
   */
  const dialOne = (
    request: ConnectRequest,
    candidate: Backend,
    scope: Scope.Scope
  ): Effect.Effect<Upstream, ConnectError> => {
    const lease = registry.acquire(candidate.address)
    if (lease === undefined) return Effect.fail(noBackend)
    const backend = lease.backend
    const whenDown = (callback: () => void) => lease.whenDown(callback)
    const started = performance.now()
    let upstream: Upstream | undefined
    const close = Effect.sync(() => {
      if (upstream !== undefined) {
        const { connection, socket } = upstream
        socket.destroy()
        connection.destroy()
        metrics.transferred(candidate.address, connection.bytesWritten, connection.bytesRead)
      }
      lease.release()
    })
    // A plain connection reads into the shared buffer; a TLS session reads its own way.
    const reads = request.tls === undefined ? new SharedBufferReads() : undefined
    const connected = Effect.flatMap(dialer.dial(candidate, request.dialTimeoutMs, reads), (connection) => {
      if (request.keepAliveMs > 0) connection.setKeepAlive(true, request.keepAliveMs)
      if (request.preamble !== undefined) connection.write(request.preamble)
      if (request.tls === undefined) {
        return Effect.succeed(upstream = { backend, connection, socket: connection, reads, whenDown })
      }
      return Effect.map(
        Effect.onError(request.tls.originate(connection, candidate, request.dialTimeoutMs), () =>
          Effect.sync(() => connection.destroy())),
        (socket) => (upstream = { backend, connection, socket, reads: undefined, whenDown })
      )
    })
    return Effect.andThen(
      Scope.addFinalizer(scope, close),
      Effect.matchEffect(connected, {
        onSuccess: (connectedTo) => {
          metrics.dialed(candidate.address, (performance.now() - started) / 1000, true)
          return Effect.succeed(connectedTo)
        },
        onFailure: (error) => {
          lease.release()
          return failed(
            backend,
            error._tag === "DialError" ? error.detail : error.reason,
            error._tag === "DialError" && error.reason === "local",
            (performance.now() - started) / 1000
          )
        }
      })
    )
  }

  /** Dials the candidates from `index` on until one connects; a local failure stops the retries. */
  const attempt = (
    request: ConnectRequest,
    candidates: ReadonlyArray<Backend>,
    index: number,
    attempts: number,
    scope: Scope.Scope
  ): Effect.Effect<Upstream, ConnectError> =>
    Effect.catchTag(
      dialOne(request, candidates[index]!, scope),
      "DialFailed",
      (error) => index + 1 < attempts ? attempt(request, candidates, index + 1, attempts, scope) : Effect.fail(error)
    )

  return Pool.of({
    registry,
    connect: (request) =>
      Effect.flatMap(Effect.scope, (scope) =>
        Effect.flatMap(balancer.candidates(request.client), (candidates) =>
          candidates.length === 0
            ? Effect.fail(noBackend)
            : attempt(request, candidates, 0, Math.min(candidates.length, request.retries + 1), scope))),
    prepare: (config) => Effect.map(discovery.resolve(config.backends), (backends) => ({ config, backends })),
    // A reload names the backends again: weights an operator set give way to the configured ones.
    commit: (prepared) =>
      SubscriptionRef.set(settings, prepared.config).pipe(
        Effect.andThen(discovery.apply(prepared.backends)),
        Effect.tap(registry.resetWeights)
      )
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
): Layer.Layer<Pool, never, Settings | Metrics | Dialer | HealthCheck | Resolver | LogLimits> => {
  const registry = overrides.registry ?? BackendRegistryLive.layer([])
  const discovery = overrides.registry === undefined ? DiscoveryLive.layer : DiscoveryLive.none
  const parts = Layer.mergeAll(
    discovery,
    overrides.balancer ?? BalancerLive.layer,
    overrides.activeChecks === false ? Layer.empty : HealthMonitorLive.layer
  ).pipe(Layer.provideMerge(registry))
  return Layer.fresh(Layer.effect(Pool, make).pipe(
    Layer.provide(parts),
    Layer.provide(Layer.effect(PoolSettings, SubscriptionRef.make(config)))
  ))
}
