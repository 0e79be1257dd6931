/**
 * effect-tcp-proxy as a library: the services, their live layers, the
 * configuration and the whole proxy as one layer, for an Effect application
 * that runs the proxy in its own runtime and scope (and swaps any layer).
 * Signals and process exit belong to the CLI (`Main.ts`), not to the library.
 *
 * @since 0.1.0
 */

/** The whole proxy: `layer(config, overrides)`, `layerWithSettings`, `reconfigure`. */
export * as TcpProxy from "./TcpProxy.ts"

/** Configuration: the settings, their defaults, backends. */
export * as Config from "./domain/Config.ts"
/** The config file: `parse`, `load`, `apply`. */
export * as ConfigFile from "./domain/ConfigFile.ts"
/** Address text: `HOST:PORT`, `[IPV6]:PORT`, `:PORT`. */
export * as Address from "./domain/Address.ts"
/** PROXY protocol v1/v2 headers. */
export * as ProxyProtocol from "./domain/ProxyProtocol.ts"

export { Balancer, type ClientInfo } from "./services/Balancer.ts"
export {
  type Backend,
  BackendRegistry,
  type BackendStatus,
  type HealthState,
  RegistryChange,
  type RegistryUpdate
} from "./services/BackendRegistry.ts"
export { ConnectionHandler } from "./services/ConnectionHandler.ts"
export { DialError, Dialer } from "./services/Dialer.ts"
export { HealthCheck, HealthCheckError } from "./services/HealthCheck.ts"
export { HealthMonitor } from "./services/HealthMonitor.ts"
export { AdminEndpoint, Listener } from "./services/Listener.ts"
export { type BackendTraffic, type ConnectionSummary, type ErrorKind, Metrics } from "./services/Metrics.ts"
export { Settings } from "./services/Settings.ts"
export { DrainCut, Draining } from "./services/Shutdown.ts"

/** The live layers, to reuse or to wrap. */
export * as BackendRegistryLive from "./layers/BackendRegistryLive.ts"
export * as BalancerLive from "./layers/balancers/BalancerLive.ts"
export * as DialerLive from "./layers/DialerLive.ts"
export * as HealthCheckLive from "./layers/HealthCheckLive.ts"
export * as HealthMonitorLive from "./layers/HealthMonitorLive.ts"
export * as Logging from "./layers/Logging.ts"
export * as MetricsLive from "./layers/MetricsLive.ts"
export * as SettingsLive from "./layers/SettingsLive.ts"
