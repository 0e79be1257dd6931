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

/** Configuration: the settings, their defaults, backends, pools. */
export * as Config from "./domain/Config.ts"
/** The config file: `parse`, `apply`. */
export * as ConfigFile from "./domain/ConfigFile.ts"
/** Address text: `HOST:PORT`, `[IPV6]:PORT`, `:PORT`. */
export * as Address from "./domain/Address.ts"
/** PROXY protocol v1/v2 headers. */
export * as ProxyProtocol from "./domain/ProxyProtocol.ts"
/** The balancing strategies, over plain views of the backends. */
export * as Strategies from "./domain/balancing/Strategies.ts"
export type { BackendView, ClientView, PickContext, Strategy, Uniform } from "./domain/balancing/Strategy.ts"
export type { AccessEntry, EndWord } from "./domain/AccessLine.ts"

export { AccessLog, type AccessLogWriter } from "./services/AccessLog.ts"
export { AdminEndpoint, AdminListenError, AdminTokenError } from "./services/AdminEndpoint.ts"
export {
  type AdminState,
  adminStates,
  type Backend,
  BackendRegistry,
  type BackendStatus,
  type HealthState,
  type Lease,
  RegistryChange,
  type RegistryUpdate,
  type Selection
} from "./services/BackendRegistry.ts"
export { Balancer } from "./services/Balancer.ts"
export {
  BackendDown,
  BackendReset,
  ClientReset,
  Connection,
  type ConnectionError,
  Denied,
  describe as describeEnding,
  type Ending,
  IdleTimeout,
  Rejected,
  type RelayError
} from "./services/Connection.ts"
export { Connections } from "./services/Connections.ts"
export { DialError, Dialer, type DialFailure } from "./services/Dialer.ts"
export { Discovery } from "./services/Discovery.ts"
export { type CheckOptions, HealthCheck, HealthCheckError } from "./services/HealthCheck.ts"
export { Listener, ListenError } from "./services/Listener.ts"
export {
  type BackendGauges,
  type ConnectionSummary,
  type ErrorKind,
  type HistogramCounts,
  Metrics,
  type MetricsExport,
  type RejectReason,
  type TlsFailureKind
} from "./services/Metrics.ts"
export {
  type ConnectError,
  type ConnectRequest,
  DialFailed,
  LocalResource,
  NoBackend,
  Pool,
  type PoolConfig,
  PoolSettings,
  type PreparedPool,
  type Upstream,
  type UpstreamTls
} from "./services/Pool.ts"
export { ResolveError, Resolver } from "./services/Resolver.ts"
export {
  ClientHelloError,
  type Entry,
  HandshakeError,
  type RoutedPool,
  Routes,
  type RoutesUpdate,
  TlsConfigError
} from "./services/Routes.ts"
export { Settings } from "./services/Settings.ts"
export { type BackendSeries, type Feed, type Series, type StateChange, Stats, type Values } from "./services/Stats.ts"
export { DrainCut, Draining } from "./services/Shutdown.ts"
export {
  type ActiveCounts,
  ControlLink,
  type MemberState,
  SharedClientTable,
  type ToControl,
  type ToWorker,
  type WorkerData,
  WorkerError,
  Workers,
  WorkersHandle
} from "./services/Workers.ts"

/** The live layers, to reuse or to wrap. */
export * as BackendRegistryLive from "./layers/BackendRegistryLive.ts"
export * as ControlLinkLive from "./layers/ControlLinkLive.ts"
export * as WorkersLive from "./layers/WorkersLive.ts"
export * as ConfigCodec from "./domain/ConfigCodec.ts"
/** The pools as `/backends` shows them: `backendsView`, `describeBackend`. */
export * as BackendsView from "./layers/BackendsView.ts"
export * as BalancerLive from "./layers/BalancerLive.ts"
export * as ConnectionLive from "./layers/ConnectionLive.ts"
export * as ConnectionsLive from "./layers/ConnectionsLive.ts"
export * as DialerLive from "./layers/DialerLive.ts"
export * as DiscoveryLive from "./layers/DiscoveryLive.ts"
export * as HealthCheckLive from "./layers/HealthCheckLive.ts"
export * as HealthMonitorLive from "./layers/HealthMonitorLive.ts"
export * as ListenerLive from "./layers/ListenerLive.ts"
export * as Logging from "./layers/Logging.ts"
export * as MetricsLive from "./layers/MetricsLive.ts"
/** Pushing the metrics to an OpenTelemetry collector (OTLP/HTTP). */
export * as OtlpExport from "./layers/OtlpExport.ts"
export * as PoolLive from "./layers/PoolLive.ts"
export * as ResolverLive from "./layers/ResolverLive.ts"
export * as RoutesLive from "./layers/RoutesLive.ts"
export * as SettingsLive from "./layers/SettingsLive.ts"
/** The dashboard's sampler: the `Stats` service over the metric registry and the pools. */
export * as StatsSampler from "./layers/StatsSampler.ts"
