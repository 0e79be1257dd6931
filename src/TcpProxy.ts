/**
 * The whole proxy as one layer, built from a {@link ProxyConfig}: the shared
 * services (settings, metrics, dialer, health check, resolver), the pools
 * (the default one and one per SNI route) behind the front door, the
 * optional admin endpoint and OTLP exporter, and the listener with its
 * connections. Closing its scope stops the listener, drains connections,
 * then stops the admin endpoint, the exporter (after a last push) and the
 * health checks, in that order.
 *
 * @since 0.1.0
 */
import * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
import * as Equal from "effect/Equal"
import * as Layer from "effect/Layer"
import * as Option from "effect/Option"
import * as SubscriptionRef from "effect/SubscriptionRef"
import type * as Address from "./domain/Address.ts"
import { defaultPool, type ProxyConfig } from "./domain/Config.ts"
import * as BackendRegistryLive from "./layers/BackendRegistryLive.ts"
import * as ConnectionLive from "./layers/ConnectionLive.ts"
import * as ConnectionsLive from "./layers/ConnectionsLive.ts"
import * as DialerLive from "./layers/DialerLive.ts"
import * as DrainingLive from "./layers/DrainingLive.ts"
import * as HealthCheckLive from "./layers/HealthCheckLive.ts"
import * as ListenerLive from "./layers/ListenerLive.ts"
import * as LogLimitsLive from "./layers/LogLimitsLive.ts"
import * as MetricsLive from "./layers/MetricsLive.ts"
import * as PoolLive from "./layers/PoolLive.ts"
import * as ResolverLive from "./layers/ResolverLive.ts"
import * as RoutesLive from "./layers/RoutesLive.ts"
import * as SettingsLive from "./layers/SettingsLive.ts"
import type { AdminEndpoint, AdminListenError, AdminTokenError } from "./services/AdminEndpoint.ts"
import type { BackendRegistry } from "./services/BackendRegistry.ts"
import type { Balancer } from "./services/Balancer.ts"
import type { Connections } from "./services/Connections.ts"
import type { Dialer } from "./services/Dialer.ts"
import type { HealthCheck } from "./services/HealthCheck.ts"
import type { Listener, ListenError } from "./services/Listener.ts"
import type { Metrics } from "./services/Metrics.ts"
import type { Pool, PoolSettings } from "./services/Pool.ts"
import type { Resolver } from "./services/Resolver.ts"
import { Routes, type TlsConfigError } from "./services/Routes.ts"
import { Settings } from "./services/Settings.ts"
import type { Draining } from "./services/Shutdown.ts"
import { ControlLink, SharedClientTable, type Workers, WorkersHandle } from "./services/Workers.ts"

/**
 * Layers that replace the live ones: a registry fed by other discovery, a
 * custom balancer, test doubles. The registry and balancer are built once
 * for every pool (the default one and each SNI route's).
 */
export interface Overrides {
  /** A registry someone else feeds (through `Pool.registry.update`): the proxy then resolves no names itself. */
  readonly registry?: Layer.Layer<BackendRegistry, never, PoolSettings | Metrics>
  readonly balancer?: Layer.Layer<Balancer, never, BackendRegistry | PoolSettings>
  readonly dialer?: Layer.Layer<Dialer>
  readonly healthCheck?: Layer.Layer<HealthCheck, never, Dialer>
  readonly metrics?: Layer.Layer<Metrics>
  /** The name resolver for backends given by host name. */
  readonly resolver?: Layer.Layer<Resolver>
  /** False: no pool runs health checks of its own; whoever feeds the registries owns health (see `registry`). */
  readonly activeChecks?: boolean
}

/** Why the proxy could not start: an address it could not bind, or a certificate it could not load. */
export type StartError = ListenError | AdminListenError | AdminTokenError | TlsConfigError

/** What the running proxy provides to whoever embeds or tests it; the `Pool` is the default pool. */
export type Services = Listener | Pool | Routes | Metrics | Draining | Connections

/** The admin endpoint's code, loaded only when it is configured. */
const adminServer = Effect.promise(() => import("./layers/AdminServer.ts"))

/** Fails when the write API's token file is given but cannot be used. */
const checkAdminToken = (config: ProxyConfig) =>
  Option.match(config.adminTokenFile, {
    onNone: () => Effect.void,
    onSome: (file) => Effect.flatMap(adminServer, (admin) => Effect.asVoid(admin.readToken(file)))
  })

/** The admin endpoint, with its write API's token file checked first. */
const adminLayer = (
  address: Address.ListenAddress,
  config: ProxyConfig
): Layer.Layer<AdminEndpoint, AdminListenError | AdminTokenError, Routes | Draining | Settings> =>
  Layer.unwrap(Effect.andThen(checkAdminToken(config), Effect.map(adminServer, (admin) => admin.layer(address))))

/** Pushes the metrics to an OpenTelemetry collector, when `--otlp-endpoint` is given; its code is loaded only then. */
const otlpLayer = (config: ProxyConfig): Layer.Layer<never> =>
  Option.match(config.otlpEndpoint, {
    onNone: () => Layer.empty,
    onSome: (url) =>
      Layer.unwrap(Effect.map(
        Effect.promise(() => import("./layers/OtlpExport.ts")),
        (otlp) => otlp.layer({ url, interval: config.otlpInterval })
      ))
  })

/**
 * The parts every way of running the proxy shares, in the order they stop:
 * `front` (what takes connections: the listener, or the workers), then the
 * admin endpoint, then the pools (their checks), then the shared services.
 */
const around = <A, E, R>(initial: ProxyConfig, overrides: Overrides, front: Layer.Layer<A, E, R>) => {
  const poolOverrides = { registry: overrides.registry, balancer: overrides.balancer, activeChecks: overrides.activeChecks }
  const shared = Layer.mergeAll(
    overrides.metrics ?? MetricsLive.layer,
    overrides.dialer ?? DialerLive.layer,
    overrides.resolver ?? ResolverLive.layer,
    DrainingLive.layer,
    LogLimitsLive.layer
  )
  const pools = RoutesLive.layer(poolOverrides).pipe(
    Layer.provideMerge(PoolLive.layer(defaultPool(initial), poolOverrides)),
    Layer.provide(overrides.healthCheck ?? HealthCheckLive.layer)
  )
  // The admin endpoint is built before the front, so it answers through the drain; the OTLP
  // exporter too, so its last push, as the proxy stops, counts every connection.
  const beforeFront = Option.match(initial.metricsAddress, {
    onNone: () => pools,
    onSome: (address) => Layer.provideMerge(adminLayer(address, initial), pools)
  }).pipe(Layer.merge(otlpLayer(initial)))
  return front.pipe(Layer.provideMerge(beforeFront), Layer.provideMerge(shared))
}

/** The listener and its connections. */
const listening = (options: ListenerLive.ListenOptions) =>
  ListenerLive.layerWith(options).pipe(
    Layer.provide(ConnectionLive.layer),
    Layer.provideMerge(ConnectionsLive.layer)
  )

/**
 * The proxy over a {@link Settings} service supplied from outside (so the
 * caller can reload it, and share it with its logger).
 */
export const layerWithSettings = (
  initial: ProxyConfig,
  overrides: Overrides = {}
): Layer.Layer<Services, StartError, Settings> => around(initial, overrides, listening({}))

/**
 * The control part of a proxy with workers: everything but the listener,
 * with `workers` in its place (they take the connections). `workers` is the
 * supervisor (`WorkersLive`), given by the caller who knows where the
 * worker's code is.
 */
export const layerControl = <E>(
  initial: ProxyConfig,
  workers: Layer.Layer<Workers, E, Routes | Settings | Metrics | Draining>,
  overrides: Overrides = {}
): Layer.Layer<Workers | Routes | Metrics | Draining | Pool, StartError | E, Settings> =>
  around(initial, overrides, workers).pipe(Layer.provide(Layer.succeed(WorkersHandle, { current: undefined })))

/**
 * One worker of a proxy with workers: the listener (sharing the address
 * with the other workers), connections and pools whose registries mirror
 * the control part's (`link`); no health checks, no discovery, no admin
 * endpoint of its own. Per-IP limits count in `clientTable`, shared by
 * every worker.
 */
export const layerWorker = (
  initial: ProxyConfig,
  link: ControlLink["Service"],
  clientTable: SharedClientTable["Service"],
  overrides: Overrides = {}
): Layer.Layer<Services, StartError, Settings> =>
  around({ ...initial, metricsAddress: Option.none(), otlpEndpoint: Option.none() }, {
    ...overrides,
    registry: BackendRegistryLive.mirror.pipe(Layer.provide(Layer.succeed(ControlLink, link))),
    activeChecks: false
  }, listening({ reusePort: true, announce: false })).pipe(
    Layer.provide(Layer.succeed(SharedClientTable, clientTable))
  )

/** Runs the proxy for as long as the layer's scope is open. */
export const layer = (config: ProxyConfig, overrides: Overrides = {}): Layer.Layer<Services | Settings, StartError> =>
  layerWithSettings(config, overrides).pipe(Layer.provideMerge(SettingsLive.layer(config)))

const sameAddress = (a: Option.Option<Address.ListenAddress>, b: Option.Option<Address.ListenAddress>): boolean =>
  Option.isNone(a) || Option.isNone(b)
    ? Option.isNone(a) && Option.isNone(b)
    : a.value.host === b.value.host && a.value.port === b.value.port

/**
 * Puts a new configuration in force on a running proxy. Everything it needs
 * is made ready first (certificates loaded, names resolved, the pools of new
 * routes built): a file that cannot be used fails then, and nothing changes.
 * Then, at once, backends are added (their checks start), removed (their
 * open connections are left to finish) or re-weighted in every pool, and
 * the settings are published once: every other setting applies to what
 * starts from now. The listen and admin addresses, the workers and the
 * OTLP settings cannot change while running: a change to them is logged as
 * needing a restart, and the rest still applies.
 */
export const reconfigure = Effect.fn("TcpProxy.reconfigure")(function*(
  next: ProxyConfig,
  options: {
    /** False in a worker: the control part logs for the whole proxy. */
    readonly log?: boolean
  } = {}
) {
  const settings = yield* Settings
  const routes = yield* Routes
  const previous = yield* SubscriptionRef.get(settings)
  const applied = {
    ...next,
    listen: previous.listen,
    metricsAddress: previous.metricsAddress,
    workers: previous.workers,
    otlpEndpoint: previous.otlpEndpoint,
    otlpInterval: previous.otlpInterval
  }
  yield* checkAdminToken(applied)
  const commit = yield* routes.prepare(applied)
  if (options.log === false) {
    yield* commit
    return yield* SubscriptionRef.set(settings, applied)
  }
  if (!sameAddress(Option.some(previous.listen), Option.some(next.listen))) {
    yield* Effect.logWarning("laddr changed: it takes effect after a restart")
  }
  if (!sameAddress(previous.metricsAddress, next.metricsAddress)) {
    yield* Effect.logWarning("metrics-addr changed: it takes effect after a restart")
  }
  if (previous.workers !== next.workers) {
    yield* Effect.logWarning("workers changed: it takes effect after a restart")
  }
  if (!Equal.equals(previous.otlpEndpoint, next.otlpEndpoint)) {
    yield* Effect.logWarning("otlp-endpoint changed: it takes effect after a restart")
  }
  if (!Duration.equals(previous.otlpInterval, next.otlpInterval)) {
    yield* Effect.logWarning("otlp-interval changed: it takes effect after a restart")
  }
  const update = yield* commit
  yield* SubscriptionRef.set(settings, applied)
  yield* Effect.logInfo("config reloaded").pipe(Effect.annotateLogs({
    added: update.backends.added.join(","),
    removed: update.backends.removed.join(","),
    reweighted: update.backends.reweighted.join(",")
  }))
})
