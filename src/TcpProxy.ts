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
import * as BalancerLive from "./layers/BalancerLive.ts"
import * as ConnectionHandlerLive from "./layers/ConnectionHandlerLive.ts"
import * as DialerLive from "./layers/DialerLive.ts"
import * as HealthCheckLive from "./layers/HealthCheckLive.ts"
import * as HealthMonitorLive from "./layers/HealthMonitorLive.ts"
import * as ListenerLive from "./layers/Listener.ts"
import * as MetricsLive from "./layers/MetricsLive.ts"
import type { BackendRegistry } from "./services/BackendRegistry.ts"
import type { Listener } from "./services/Listener.ts"
import type { Metrics } from "./services/Metrics.ts"

/**
 * Runs the proxy for as long as the layer's scope is open. It provides the
 * listener (its bound address), the registry and the metrics, for whoever
 * embeds or tests it.
 */
export const layer = (
  config: ProxyConfig
): Layer.Layer<Listener | BackendRegistry | Metrics, ListenerLive.ListenError> => {
  const foundation = Layer.mergeAll(BackendRegistryLive.layer(config.backends), MetricsLive.layer, DialerLive.layer)
  const health = HealthMonitorLive.layer(config.health).pipe(
    Layer.provide(HealthCheckLive.layer(config.health.timeout))
  )
  const handler = ConnectionHandlerLive.layer(config).pipe(
    Layer.provide(Layer.mergeAll(health, BalancerLive.make(config.balancer)))
  )
  return ListenerLive.layer(config).pipe(
    Layer.provide(handler),
    Layer.provideMerge(foundation)
  )
}
