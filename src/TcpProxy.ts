/**
 * The whole proxy as one layer: registry, metrics, dialer, health checks,
 * balancer, connection handler and listener, built from a {@link ProxyConfig}.
 * Closing its scope stops the listener, drains connections, then stops the
 * health checks, in that order.
 *
 * @since 0.1.0
 */
import { Layer } from "effect"
import type { ProxyConfig } from "./domain/Config.ts"
import * as BackendRegistryLive from "./layers/BackendRegistryLive.ts"
import * as BalancerLive from "./layers/balancers/BalancerLive.ts"
import * as ConnectionHandlerLive from "./layers/ConnectionHandlerLive.ts"
import * as DialerLive from "./layers/DialerLive.ts"
import * as HealthCheckLive from "./layers/HealthCheckLive.ts"
import * as HealthMonitorLive from "./layers/HealthMonitorLive.ts"
import * as ListenerLive from "./layers/Listener.ts"
import * as MetricsLive from "./layers/MetricsLive.ts"
import type { BackendRegistry } from "./services/BackendRegistry.ts"
import type { Balancer } from "./services/Balancer.ts"
import type { Dialer } from "./services/Dialer.ts"
import type { HealthCheck } from "./services/HealthCheck.ts"
import type { Listener } from "./services/Listener.ts"
import type { Metrics } from "./services/Metrics.ts"

/** Layers that replace the live ones: a registry fed by other discovery, a custom balancer, test doubles. */
export interface Overrides {
  readonly registry?: Layer.Layer<BackendRegistry>
  readonly balancer?: Layer.Layer<Balancer, never, BackendRegistry>
  readonly dialer?: Layer.Layer<Dialer>
  readonly healthCheck?: Layer.Layer<HealthCheck, never, Dialer>
  readonly metrics?: Layer.Layer<Metrics>
}

/**
 * Runs the proxy for as long as the layer's scope is open. It provides the
 * listener (its bound address), the registry and the metrics, for whoever
 * embeds or tests it.
 */
export const layer = (
  config: ProxyConfig,
  overrides: Overrides = {}
): Layer.Layer<Listener | BackendRegistry | Metrics, ListenerLive.ListenError> => {
  const foundation = Layer.mergeAll(
    overrides.registry ?? BackendRegistryLive.layer(config.backends),
    overrides.metrics ?? MetricsLive.layer,
    overrides.dialer ?? DialerLive.layer
  )
  const health = HealthMonitorLive.layer(config.health).pipe(
    Layer.provide(overrides.healthCheck ?? HealthCheckLive.layer(config.health.timeout))
  )
  const handler = ConnectionHandlerLive.layer(config).pipe(
    Layer.provide(Layer.mergeAll(health, overrides.balancer ?? BalancerLive.make(config.balancer)))
  )
  return ListenerLive.layer(config).pipe(
    Layer.provide(handler),
    Layer.provideMerge(foundation)
  )
}
