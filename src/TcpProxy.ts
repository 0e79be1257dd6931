/**
 * The whole proxy as one layer: registry, metrics, dialer, health checks,
 * balancer, connection handler and listener, built from a {@link ProxyConfig}.
 * Closing its scope stops the listener, drains connections, then stops the
 * health checks, in that order.
 *
 * @since 0.1.0
 */
import * as Effect from "effect/Effect"
import * as Layer from "effect/Layer"
import * as Option from "effect/Option"
import type * as Address from "./domain/Address.ts"
import type { ProxyConfig } from "./domain/Config.ts"
import * as AdminServer from "./layers/AdminServer.ts"
import * as BackendRegistryLive from "./layers/BackendRegistryLive.ts"
import * as BalancerLive from "./layers/balancers/BalancerLive.ts"
import * as ConnectionHandlerLive from "./layers/ConnectionHandlerLive.ts"
import * as DialerLive from "./layers/DialerLive.ts"
import * as DiscoveryLive from "./layers/DiscoveryLive.ts"
import * as DrainingLive from "./layers/DrainingLive.ts"
import * as HealthCheckLive from "./layers/HealthCheckLive.ts"
import * as HealthMonitorLive from "./layers/HealthMonitorLive.ts"
import * as ListenerLive from "./layers/Listener.ts"
import * as MetricsLive from "./layers/MetricsLive.ts"
import * as ResolverLive from "./layers/ResolverLive.ts"
import * as RoutesLive from "./layers/RoutesLive.ts"
import * as SettingsLive from "./layers/SettingsLive.ts"
import type { BackendRegistry } from "./services/BackendRegistry.ts"
import { Discovery } from "./services/Discovery.ts"
import type { Balancer } from "./services/Balancer.ts"
import type { Dialer } from "./services/Dialer.ts"
import type { HealthCheck } from "./services/HealthCheck.ts"
import type { Listener } from "./services/Listener.ts"
import type { Metrics } from "./services/Metrics.ts"
import type { Resolver } from "./services/Resolver.ts"
import { Routes, type TlsConfigError } from "./services/Routes.ts"
import { Settings } from "./services/Settings.ts"
import type { Draining } from "./services/Shutdown.ts"

/** Layers that replace the live ones: a registry fed by other discovery, a custom balancer, test doubles. */
export interface Overrides {
  readonly registry?: Layer.Layer<BackendRegistry>
  readonly balancer?: Layer.Layer<Balancer, never, BackendRegistry | Settings>
  readonly dialer?: Layer.Layer<Dialer>
  readonly healthCheck?: Layer.Layer<HealthCheck, never, Dialer | Settings>
  readonly metrics?: Layer.Layer<Metrics>
  /** The name resolver for backends given by host name. */
  readonly resolver?: Layer.Layer<Resolver>
}

/** Why the proxy could not start: an address it could not bind, or a certificate it could not load. */
export type StartError = ListenerLive.ListenError | AdminServer.AdminListenError | TlsConfigError

/** What the running proxy provides to whoever embeds or tests it. */
export type Services = Listener | BackendRegistry | Metrics | Draining | Discovery | Routes

/**
 * The proxy over a {@link Settings} service supplied from outside (so the
 * caller can reload it, and share it with its logger). The registry is fed
 * from the settings' backends (names resolved), unless `overrides.registry`
 * supplies one that someone else feeds.
 */
export const layerWithSettings = (
  initial: ProxyConfig,
  overrides: Overrides = {}
): Layer.Layer<Services, StartError, Settings> => {
  const resolver = overrides.resolver ?? ResolverLive.layer
  const discovery = overrides.registry === undefined
    ? DiscoveryLive.layer.pipe(Layer.provide(resolver))
    : DiscoveryLive.none
  const services = discovery.pipe(
    Layer.provideMerge(Layer.mergeAll(
      overrides.registry ?? BackendRegistryLive.layer([]),
      overrides.metrics ?? MetricsLive.layer,
      overrides.dialer ?? DialerLive.layer,
      DrainingLive.layer
    ))
  )
  // The admin endpoint is built before the listener, so it answers through the drain.
  const foundation = Option.match(initial.metricsAddress, {
    onNone: () => services,
    onSome: (address) => Layer.provideMerge(AdminServer.layer(address), services)
  })
  const checks = Layer.mergeAll(overrides.healthCheck ?? HealthCheckLive.layer, resolver)
  const defaultPool = Layer.mergeAll(HealthMonitorLive.layer, overrides.balancer ?? BalancerLive.layer)
  const routes = RoutesLive.layer.pipe(Layer.provideMerge(defaultPool), Layer.provide(checks))
  return ListenerLive.layer.pipe(
    Layer.provide(ConnectionHandlerLive.layer),
    Layer.provideMerge(routes),
    Layer.provideMerge(foundation)
  )
}

/**
 * Runs the proxy for as long as the layer's scope is open. It provides the
 * listener (its bound address), the registry, the metrics and the draining
 * flag; with `metricsAddress` set, also the `AdminEndpoint`.
 */
export const layer = (config: ProxyConfig, overrides: Overrides = {}): Layer.Layer<Services | Settings, StartError> =>
  layerWithSettings(config, overrides).pipe(Layer.provideMerge(SettingsLive.layer(config)))

const sameAddress = (a: Option.Option<Address.ListenAddress>, b: Option.Option<Address.ListenAddress>): boolean =>
  Option.isNone(a) || Option.isNone(b)
    ? Option.isNone(a) && Option.isNone(b)
    : a.value.host === b.value.host && a.value.port === b.value.port

/**
 * Puts a new configuration in force on a running proxy: backends are added
 * (their checks start), removed (their open connections are left to finish)
 * or re-weighted (names resolved anew), certificates are re-read, and every
 * other setting applies to what starts from now. The listen and admin
 * addresses cannot change while running: a change to them is logged as
 * needing a restart, and the rest still applies.
 */
export const reconfigure = Effect.fn("TcpProxy.reconfigure")(function*(next: ProxyConfig) {
  const settings = yield* Settings
  const discovery = yield* Discovery
  const routes = yield* Routes
  const previous = yield* settings.current
  if (!sameAddress(Option.some(previous.listen), Option.some(next.listen))) {
    yield* Effect.logWarning("laddr changed: it takes effect after a restart")
  }
  if (!sameAddress(previous.metricsAddress, next.metricsAddress)) {
    yield* Effect.logWarning("metrics-addr changed: it takes effect after a restart")
  }
  const applied = { ...next, listen: previous.listen, metricsAddress: previous.metricsAddress }
  yield* settings.update(applied)
  // Routes load every certificate first; one that cannot be used puts the previous settings back.
  yield* routes.reload(applied).pipe(Effect.tapError(() => settings.update(previous)))
  const update = yield* discovery.refresh
  yield* Effect.logInfo("config reloaded").pipe(Effect.annotateLogs({
    added: update.added.join(","),
    removed: update.removed.join(","),
    reweighted: update.reweighted.join(",")
  }))
})
