/**
 * A pool of backends, built the same way for the default backends and for
 * every SNI route: its settings, its registry (the one record of each
 * backend), its discovery (names in DNS), its health checks and its
 * balancer, behind the one operation a connection uses, `connect`.
 *
 * @since 0.1.0
 */
import type * as Net from "node:net"
import * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
import * as Layer from "effect/Layer"
import * as Scope from "effect/Scope"
import * as SubscriptionRef from "effect/SubscriptionRef"
import type { Backend, PoolConfig } from "../domain/Config.ts"
import { Balancer } from "../services/Balancer.ts"
import { BackendRegistry, type BackendStatus, type Lease } from "../services/BackendRegistry.ts"
import { type BackendReads, Dialer } from "../services/Dialer.ts"
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

/** A connected backend: the lease it is counted by, and its sockets. */
class Connected implements Upstream {
  readonly lease: Lease
  readonly connection: Net.Socket
  readonly socket: Net.Socket
  readonly reads: BackendReads | undefined
  constructor(lease: Lease, connection: Net.Socket, socket: Net.Socket, reads: BackendReads | undefined) {
    this.lease = lease
    this.connection = connection
    this.socket = socket
    this.reads = reads
  }
  get backend(): BackendStatus {
    return this.lease.backend
  }
  whenDown(callback: () => void): () => void {
    return this.lease.whenDown(callback)
  }
}

/**
 * What one `connect` holds until its scope closes, and all its finalizer
 * holds: the lease of the backend being dialled (or connected to), and the
 * connection once there is one.
 */
class Held {
  lease: Lease | undefined = undefined
  upstream: Connected | undefined = undefined
  readonly metrics: Metrics["Service"]
  constructor(metrics: Metrics["Service"]) {
    this.metrics = metrics
  }
  /**
   * The scope's finalizer: closes the backend connection, adds its bytes to
   * the backend's counters, and gives the place back, there and then.
   */
  readonly close = (): Effect.Effect<void> => {
    const upstream = this.upstream
    if (upstream !== undefined) {
      const { connection, socket } = upstream
      socket.destroy()
      connection.destroy()
      this.metrics.transferred(upstream.backend.backend.address, connection.bytesWritten, connection.bytesRead)
    }
    this.lease?.release()
    return Effect.void
  }
}

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

  /** Accounts for a failed dial: counted, logged (at most once per health interval), reported to health unless local. */
  const failed = (backend: BackendStatus, reason: string, local: boolean, seconds: number): Effect.Effect<void> => {
    const address = backend.backend.address
    metrics.dialed(address, seconds, false)
    if (local) {
      return logLimits.log({
        kind: "out of a local resource",
        perSecond: 1,
        level: "error",
        message: `dial ${address} failed: ${reason}; not counted against the backend`
      })
    }
    const now = Date.now()
    const interval = Duration.toMillis(SubscriptionRef.getUnsafe(settings).health.interval)
    const previous = lastLogged.get(backend)
    const report = registry.report(address, false, reason)
    if (previous !== undefined && now - previous < interval) return report
    lastLogged.set(backend, now)
    return Effect.andThen(report, Effect.logWarning(`dial ${address} failed: ${reason}`))
  }

  /**
   * Dials the candidates from `index` on until one connects, at most
   * `attempts` of them; a local failure stops the retries. Each one's
   * active count is held from its dial until the connection's scope closes
   * (or the dial fails): `held` gets the lease in the same step as it is
   * taken, and the connection once it connects. On the plain path this is
   * one suspension (the dial) and no generator.
   */
  const dial = (
    request: ConnectRequest,
    candidates: ReadonlyArray<Backend>,
    index: number,
    attempts: number,
    held: Held
  ): Effect.Effect<Upstream, ConnectError> => {
    const candidate = candidates[index]!
    const lease = registry.acquire(candidate.address)
    if (lease === undefined) return Effect.fail(noBackend)
    held.lease = lease
    const started = performance.now()
    const { tls } = request
    // A plain connection reads into the shared buffer; a TLS session reads its own way.
    const reads = tls === undefined ? new SharedBufferReads() : undefined
    const prepare = (connection: Net.Socket) => {
      if (request.keepAliveMs > 0) connection.setKeepAlive(true, request.keepAliveMs)
      if (request.preamble !== undefined) connection.write(request.preamble)
    }
    const dialled = dialer.dial(candidate, request.dialTimeoutMs, reads)
    const connected = tls === undefined
      ? Effect.map(dialled, (connection) => {
        prepare(connection)
        metrics.dialed(candidate.address, (performance.now() - started) / 1000, true)
        return held.upstream = new Connected(lease, connection, connection, reads)
      })
      : Effect.flatMap(dialled, (connection) => {
        prepare(connection)
        return Effect.map(
          Effect.onError(tls.originate(connection, candidate, request.dialTimeoutMs), () =>
            Effect.sync(() => connection.destroy())),
          (socket) => {
            metrics.dialed(candidate.address, (performance.now() - started) / 1000, true)
            return held.upstream = new Connected(lease, connection, socket, undefined)
          }
        )
      })
    return Effect.catch(connected, (error) => {
      lease.release()
      const reason = error._tag === "DialError" ? error.detail : error.reason
      const local = error._tag === "DialError" && error.reason === "local"
      const accounted = failed(lease.backend, reason, local, (performance.now() - started) / 1000)
      const next: Effect.Effect<Upstream, ConnectError> = local
        ? Effect.fail(new LocalResource({ backend: candidate.address, reason }))
        : index + 1 < attempts
        ? Effect.suspend(() => dial(request, candidates, index + 1, attempts, held))
        : Effect.fail(new DialFailed({ backend: candidate.address, reason }))
      return Effect.andThen(accounted, next)
    })
  }

  return Pool.of({
    registry,
    connect: (request, scope) => {
      // The finalizer comes first: a lease is only ever taken into something the scope will close.
      const held = new Held(metrics)
      return Effect.andThen(
        Scope.addFinalizerExit(scope, held.close),
        Effect.flatMap(balancer.candidates(request.client), (candidates) =>
          candidates.length === 0
            ? Effect.fail(noBackend)
            : dial(request, candidates, 0, Math.min(candidates.length, request.retries + 1), held))
      )
    },
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
