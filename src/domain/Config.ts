/**
 * The proxy's settings after parsing: what the command line (and later the
 * config file) becomes before any layer is built.
 *
 * @since 0.1.0
 */
import { isIP } from "node:net"
import * as Duration from "effect/Duration"
import * as Option from "effect/Option"
import * as Result from "effect/Result"
import * as Address from "./Address.ts"
import type * as Cidr from "./Cidr.ts"
import * as DurationText from "./Duration.ts"
import type * as ProxyProtocol from "./ProxyProtocol.ts"

/** A backend to relay to. `address` is its `HOST:PORT` text, the key used in logs and metric labels. */
export interface Backend {
  readonly address: string
  readonly host: string
  readonly port: number
  readonly weight: number
  /** A backup: used only while no other backend of its pool is HEALTHY and in service. */
  readonly backup?: boolean
  /** The `HOST:PORT` it was given as, when `host` came from resolving a name. */
  readonly name?: string
}

/** Whether a backend is given by host name (to resolve) rather than by IP address. */
export const isNamed = (backend: Backend): boolean => isIP(backend.host) === 0

/** Builds a backend from `HOST:PORT` (or `[IPV6]:PORT`) text. */
export const backend = (text: string, weight = 1, backup = false): Result.Result<Backend, string> =>
  Result.map(Address.parse(text), ({ host, port }) => ({
    address: Address.format(host, port),
    host,
    port,
    weight,
    ...(backup ? { backup } : {})
  }))

/** The name a backend's TLS certificate is checked against: the host it was given by (its name, for a resolved one). */
export const serverNameOf = (backend: Backend): string =>
  backend.name === undefined ? backend.host : backend.name.slice(0, backend.name.lastIndexOf(":"))

/** The balancing strategies `--lb` accepts. */
export const balancerNames = ["random", "p2c", "round-robin", "least-conn", "hash"] as const
export type BalancerName = typeof balancerNames[number]

/** Active health checking: how often, how long one check may take, and the thresholds. */
export interface HealthSettings {
  readonly interval: Duration.Duration
  readonly timeout: Duration.Duration
  readonly healthyThreshold: number
  readonly unhealthyThreshold: number
}

/** The log levels `--log-level` accepts. */
export const logLevels = ["debug", "info", "warn", "error"] as const
export type LogLevelName = typeof logLevels[number]

/** Whether lines of `level` are written under `config` (levels rank as `logLevels` lists them). */
export const logs = (config: ProxyConfig, level: LogLevelName): boolean =>
  logLevels.indexOf(config.logLevel) <= logLevels.indexOf(level)

/** The log formats `--log-format` accepts. */
export const logFormats = ["text", "json"] as const
export type LogFormat = typeof logFormats[number]

/**
 * What a health check asks a backend beyond a connect (SPEC "Payload
 * checks"): bytes to send, a prefix the answer must start with, or an HTTP
 * path whose status must be 2xx or 3xx.
 */
export interface PayloadCheck {
  readonly send: Option.Option<string>
  readonly expect: Option.Option<string>
  readonly http: Option.Option<string>
}

/** A check that only connects. */
export const connectOnly: PayloadCheck = { send: Option.none(), expect: Option.none(), http: Option.none() }

/** `override`'s parts where given, else `base`'s. */
const overlay = (base: PayloadCheck, override: PayloadCheck): PayloadCheck => ({
  send: Option.orElse(override.send, () => base.send),
  expect: Option.orElse(override.expect, () => base.expect),
  http: Option.orElse(override.http, () => base.http)
})

/** A certificate and its private key, as PEM file paths. */
export interface CertificateFiles {
  readonly cert: string
  readonly key: string
}

/** How an SNI route treats the TLS stream. */
export const routeModes = ["passthrough", "terminate"] as const
export type RouteMode = typeof routeModes[number]

/** A pool of backends picked by TLS server name (SNI). */
export interface Route {
  /** Exact names (`api.example.com`) and one-label wildcards (`*.example.com`). */
  readonly sni: ReadonlyArray<string>
  readonly mode: RouteMode
  /** The route's balancer; the top-level one when absent. */
  readonly balancer: Option.Option<BalancerName>
  readonly backends: ReadonlyArray<Backend>
  /** The route's certificate for `terminate`; the top-level one when absent. */
  readonly tls: Option.Option<CertificateFiles>
  /** The route's payload check, part by part over the top-level one (none: the top-level one). */
  readonly check?: PayloadCheck
}

/** `--connection-rate-per-ip N/DURATION`: at most `count` new connections per `per`, in bursts of up to `count`. */
export interface Rate {
  readonly count: number
  readonly per: Duration.Duration
}

/** What `N/DURATION` text looks like, for error messages. */
export const rateExpected = "N/DURATION, such as 20/1s (N a positive integer, DURATION between 1ms and 24 days)"

/** Parses `N/DURATION` (`20/1s`, `100/1m`). */
export const parseRate = (text: string): Result.Result<Rate, string> => {
  const match = /^\s*(\d{1,9})\s*\/\s*(.+?)\s*$/.exec(text)
  const count = match === null ? 0 : Number(match[1])
  if (match === null || count < 1) return Result.fail(rateExpected)
  return Result.match(DurationText.parseWithin(match[2]!, DurationText.timeoutRange), {
    onFailure: () => Result.fail(rateExpected),
    onSuccess: (per) => Result.succeed({ count, per })
  })
}

/** Everything the proxy needs to run. */
export interface ProxyConfig {
  readonly listen: Address.ListenAddress
  readonly backends: ReadonlyArray<Backend>
  readonly balancer: BalancerName
  readonly dialTimeout: Duration.Duration
  readonly retries: number
  readonly health: HealthSettings
  readonly grace: Duration.Duration
  readonly maxConnections: number
  readonly idleTimeout: Option.Option<Duration.Duration>
  readonly proxyProtocol: ProxyProtocol.Mode
  /** Where the admin/metrics HTTP endpoint listens; off when absent. */
  readonly metricsAddress: Option.Option<Address.ListenAddress>
  /** How often backends given by host name are resolved again. */
  readonly dnsRefresh: Duration.Duration
  readonly logLevel: LogLevelName
  readonly logFormat: LogFormat
  /** Terminate TLS from clients with this certificate; plaintext when absent. */
  readonly tls: Option.Option<CertificateFiles>
  /** Re-encrypt toward backends. */
  readonly backendTls: boolean
  /** Verify backends against this CA bundle (PEM path) when re-encrypting. */
  readonly backendCa: Option.Option<string>
  /** SNI routes; the top-level backends are the default route. */
  readonly routes: ReadonlyArray<Route>
  /** Serve only clients in these ranges; everyone when empty. */
  readonly allow: ReadonlyArray<Cidr.Range>
  /** Refuse clients in these ranges (deny wins over allow). */
  readonly deny: ReadonlyArray<Cidr.Range>
  /** Connections open at once from one client IP. */
  readonly maxConnectionsPerIp: Option.Option<number>
  /** New connections one client IP may open per period. */
  readonly connectionRatePerIp: Option.Option<Rate>
  /** Peers that must open with a PROXY protocol header (v1 or v2); off when empty. */
  readonly acceptProxy: ReadonlyArray<Cidr.Range>
  /** TCP keepalive on client and backend sockets after this much idle time; off when absent. */
  readonly tcpKeepalive: Option.Option<Duration.Duration>
  /** What health checks ask the backends beyond a connect. */
  readonly check: PayloadCheck
  /** Ramp a backend's weight up over this long after it turns HEALTHY or joins; off when absent. */
  readonly slowStart: Option.Option<Duration.Duration>
  /** Close the open connections of a backend when it turns UNHEALTHY. */
  readonly closeOnUnhealthy: boolean
  /** The file holding the admin write API's token; the API is off when absent. */
  readonly adminTokenFile: Option.Option<string>
  /** Processes' worth of threads accepting connections: a count, or `auto` (one per CPU). */
  readonly workers: Workers
  /** Where to push metrics over OTLP/HTTP; off when absent. */
  readonly otlpEndpoint: Option.Option<string>
  /** How often metrics are pushed. */
  readonly otlpInterval: Duration.Duration
}

/** `--workers`: a count (1 is a single thread, the default), or one per CPU. */
export type Workers = number | "auto"

/** Parses `--workers` text: a positive integer or `auto`. */
export const parseWorkers = (text: string): Result.Result<Workers, string> => {
  const input = text.trim().toLowerCase()
  if (input === "auto") return Result.succeed("auto")
  return /^\d{1,4}$/.test(input) && Number(input) >= 1
    ? Result.succeed(Number(input))
    : Result.fail(`expected a positive integer or auto, got ${JSON.stringify(text)}`)
}

/** The defaults SPEC.md states, for every setting but the backends. */
export const defaults: Omit<ProxyConfig, "backends"> = {
  listen: { host: undefined, port: 4000 },
  balancer: "p2c",
  dialTimeout: Duration.seconds(3),
  retries: 2,
  health: {
    interval: Duration.seconds(5),
    timeout: Duration.seconds(1),
    healthyThreshold: 3,
    unhealthyThreshold: 3
  },
  grace: Duration.seconds(5),
  maxConnections: 10_000,
  idleTimeout: Option.none(),
  proxyProtocol: "off",
  metricsAddress: Option.none(),
  dnsRefresh: Duration.seconds(30),
  logLevel: "info",
  logFormat: "text",
  tls: Option.none(),
  backendTls: false,
  backendCa: Option.none(),
  routes: [],
  allow: [],
  deny: [],
  maxConnectionsPerIp: Option.none(),
  connectionRatePerIp: Option.none(),
  acceptProxy: [],
  tcpKeepalive: Option.none(),
  check: connectOnly,
  slowStart: Option.none(),
  closeOnUnhealthy: false,
  adminTokenFile: Option.none(),
  workers: 1,
  otlpEndpoint: Option.none(),
  otlpInterval: Duration.seconds(10)
}

/** The settings of one pool of backends: the default one, or an SNI route's. */
export interface PoolConfig {
  /** `default`, or the route's server names. */
  readonly name: string
  readonly backends: ReadonlyArray<Backend>
  readonly balancer: BalancerName
  readonly health: HealthSettings
  /** What a connection to a backend of the pool starts with, so that a health check starts with it too. */
  readonly proxyProtocol: ProxyProtocol.Mode
  /** TLS toward the backends (verified against the CA file when one is given); none for passthrough routes. */
  readonly backendTls: Option.Option<{ readonly ca: Option.Option<string> }>
  /** What the pool's health checks ask beyond a connect. */
  readonly check: PayloadCheck
  /** Ramp a backend's weight up over this long after it turns HEALTHY or joins. */
  readonly slowStart: Option.Option<Duration.Duration>
}

const backendTlsOf = (config: ProxyConfig) =>
  config.backendTls ? Option.some({ ca: config.backendCa }) : Option.none()

/** The default pool: the top-level backends, balancer and health settings. */
export const defaultPool = (config: ProxyConfig): PoolConfig => ({
  name: "default",
  backends: config.backends,
  balancer: config.balancer,
  health: config.health,
  proxyProtocol: config.proxyProtocol,
  backendTls: backendTlsOf(config),
  check: config.check,
  slowStart: config.slowStart
})

/** A route's pool: its backends, its balancer (else the top-level one), the top-level health settings. */
export const routePool = (config: ProxyConfig, route: Route): PoolConfig => ({
  name: route.sni.join(","),
  backends: route.backends,
  balancer: Option.getOrElse(route.balancer, () => config.balancer),
  health: config.health,
  proxyProtocol: config.proxyProtocol,
  backendTls: route.mode === "passthrough" ? Option.none() : backendTlsOf(config),
  check: route.check === undefined ? config.check : overlay(config.check, route.check),
  slowStart: config.slowStart
})

/**
 * Some of the settings, as a config file or the command line gives them: the
 * health settings and the payload check part by part, so that layers of
 * settings merge.
 */
export type PartialConfig = Partial<Omit<ProxyConfig, "health" | "check">> & {
  readonly health?: Partial<HealthSettings>
  readonly check?: Partial<PayloadCheck>
}

/** `base` with `layer` laid over it; the health settings and the payload check are merged part by part. */
export const apply = (base: ProxyConfig, layer: PartialConfig): ProxyConfig => {
  const { check, health, ...rest } = layer
  return { ...base, ...rest, health: { ...base.health, ...health }, check: { ...base.check, ...check } }
}

/** Builds a config from the defaults, overriding what is given. */
export const make = (overrides: Partial<ProxyConfig> & Pick<ProxyConfig, "backends">): ProxyConfig => ({
  ...defaults,
  ...overrides
})
