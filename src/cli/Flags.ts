/**
 * The command-line flags, and what they set: every flag is optional, so that
 * only the flags actually given override the config file (also after a
 * reload); the defaults fill in what neither gives.
 *
 * @since 0.1.0
 */
import { resolve } from "node:path"
import * as Data from "effect/Data"
import * as Effect from "effect/Effect"
import * as Option from "effect/Option"
import * as Result from "effect/Result"
import * as Argument from "effect/cli/Argument"
import * as Command from "effect/cli/Command"
import * as Flag from "effect/cli/Flag"
import * as Address from "../domain/Address.ts"
import * as Cidr from "../domain/Cidr.ts"
import * as Config from "../domain/Config.ts"
import * as Duration from "../domain/Duration.ts"
import * as ProxyProtocol from "../domain/ProxyProtocol.ts"
import * as Text from "../domain/Text.ts"

/** A flag or argument value that cannot be used. */
export class ConfigError extends Data.TaggedError("ConfigError")<{ readonly message: string }> {}

const describe = (description: string, fallback: string | undefined): string =>
  `${description}${fallback === undefined ? "" : ` (default ${fallback})`}`

const duration = (name: string, range: Duration.Range, description: string, fallback?: string) =>
  Flag.String(name).pipe(
    Flag.filterMap((text) => Result.getSuccess(Duration.parseWithin(text, range)), () => Duration.expectedWithin(range)),
    Flag.optional,
    Flag.withDescription(describe(description, fallback))
  )

const choice = <const A extends string>(name: string, values: ReadonlyArray<A>, description: string, fallback: A) =>
  Flag.String(name).pipe(
    Flag.filterMap(
      (text) => Option.fromNullishOr(values.find((value) => value === text.toLowerCase())),
      () => `one of ${values.join(", ")}`
    ),
    Flag.optional,
    Flag.withDescription(describe(`${description}: ${values.join(" | ")}`, fallback))
  )

const count = (name: string, minimum: number, description: string, fallback: number) =>
  Flag.Int(name).pipe(
    Flag.filter((n) => n >= minimum, () => `an integer >= ${minimum}`),
    Flag.optional,
    Flag.withDescription(describe(description, String(fallback)))
  )

const text = (name: string, description: string) =>
  Flag.String(name).pipe(Flag.optional, Flag.withDescription(description))

/** Every flag of `tcp-proxy`, and its backends. */
export const flags = {
  backends: Argument.String("backend").pipe(
    Argument.withDescription("HOST:PORT (IPv6 as [ADDR]:PORT) of a backend"),
    Argument.variadic()
  ),
  config: text("config", "YAML or JSON settings file; SIGHUP or a change to it re-reads it"),
  laddr: text("laddr", "address to listen on: HOST:PORT, :PORT or [IPV6]:PORT (default :4000)"),
  lb: choice("lb", Config.balancerNames, "balancer", "p2c"),
  timeout: duration("timeout", Duration.timeoutRange, "backend dial timeout", "3s"),
  retries: count("retries", 0, "other backends tried when a dial fails", 2),
  healthInterval: duration("health-interval", Duration.intervalRange, "time between active health checks", "5s"),
  healthTimeout: duration("health-timeout", Duration.timeoutRange, "one health check's timeout", "1s"),
  healthyThreshold: count("healthy-threshold", 1, "consecutive successes to turn HEALTHY", 3),
  unhealthyThreshold: count("unhealthy-threshold", 1, "consecutive failures to turn UNHEALTHY", 3),
  grace: duration("grace", Duration.timeoutRange, "drain time on shutdown", "5s"),
  maxConnections: count("max-connections", 1, "concurrent client connections; past it new ones are closed", 10_000),
  idleTimeout: duration(
    "idle-timeout",
    Duration.timeoutRange,
    "close a connection with no bytes either way for this long (default: none)"
  ),
  dnsRefresh: duration("dns-refresh", Duration.intervalRange, "re-resolve backends given by host name this often", "30s"),
  metricsAddr: text("metrics-addr", "serve /metrics, /healthz and /backends here, e.g. 127.0.0.1:9090 (default: off)"),
  proxyProtocol: choice("proxy-protocol", ProxyProtocol.modes, "send a PROXY protocol header to backends", "off"),
  tlsCert: text("tls-cert", "terminate TLS from clients with this certificate (PEM); needs --tls-key"),
  tlsKey: text("tls-key", "the private key (PEM) of --tls-cert"),
  backendTls: Flag.Boolean("backend-tls").pipe(
    Flag.optional,
    Flag.withDescription("re-encrypt toward backends with TLS (default: off)")
  ),
  backendCa: text("backend-ca", "verify backends against this CA bundle (PEM) with --backend-tls"),
  allow: text("allow", "serve only clients in these ranges: CIDR,... (default: all)"),
  deny: text("deny", "refuse clients in these ranges: CIDR,... (default: none)"),
  maxConnectionsPerIp: Flag.Int("max-connections-per-ip").pipe(
    Flag.filter((n) => n >= 1, () => "an integer >= 1"),
    Flag.optional,
    Flag.withDescription("concurrent connections from one client IP (default: none)")
  ),
  connectionRatePerIp: text("connection-rate-per-ip", "new connections one client IP may open per DURATION: N/DURATION, e.g. 20/1s (default: none)"),
  acceptProxy: text("accept-proxy", "expect a PROXY protocol header (v1 or v2) from peers in these ranges: CIDR,... (default: off)"),
  tcpKeepalive: duration("tcp-keepalive", Duration.timeoutRange, "TCP keepalive probes on both sides after this much idle time (default: off)"),
  healthSend: text("health-send", "health checks send this after connecting (escapes \\r \\n \\t \\\\ \\xHH)"),
  healthExpect: text("health-expect", "health checks pass only when the answer starts with this (same escapes)"),
  healthHttp: text("health-http", "health checks send GET PATH and pass on a 2xx or 3xx status"),
  slowStart: duration("slow-start", Duration.timeoutRange, "ramp a backend's weight up over this time after it turns HEALTHY or joins (default: off)"),
  closeOnUnhealthy: Flag.Boolean("close-on-unhealthy").pipe(
    Flag.optional,
    Flag.withDescription("close the open connections of a backend when it turns UNHEALTHY (default: off)")
  ),
  adminTokenFile: text("admin-token-file", "enable the admin write API with the bearer token in this file (default: off)"),
  workers: text("workers", "threads accepting connections: N or auto (one per CPU) (default 1)"),
  otlpEndpoint: text("otlp-endpoint", "push metrics to an OpenTelemetry collector (OTLP/HTTP) at this URL (default: off)"),
  otlpInterval: duration("otlp-interval", Duration.intervalRange, "how often metrics are pushed", "10s"),
  logLevel: choice("log-level", Config.logLevels, "log level", "info"),
  logFormat: choice("log-format", Config.logFormats, "log format", "text")
}

/** The parsed flags. */
export type Flags = Command.Command.Config.Infer<typeof flags>

const fromResult = <A>(result: Result.Result<A, string>) =>
  Result.isSuccess(result) ? Effect.succeed(result.success) : Effect.fail(new ConfigError({ message: result.failure }))

/** Parses an optional flag's text, when given. */
const parseGiven = <A>(text: Option.Option<string>, parse: (text: string) => Result.Result<A, string>) =>
  Option.match(text, {
    onNone: () => Effect.succeed(Option.none<A>()),
    onSome: (value) => Effect.map(fromResult(parse(value)), Option.some)
  })

/** Parses a flag's text, when given; a failure names the flag. */
const parseFlag = <A>(name: string, text: Option.Option<string>, parse: (text: string) => Result.Result<A, string>) =>
  parseGiven(text, (value) => Result.mapError(parse(value), (reason) => `--${name}: ${reason}`))

/** Only the keys whose value is given. */
const given = <A extends object>(values: { readonly [K in keyof A]: Option.Option<A[K]> }): Partial<A> => {
  const out: Partial<A> = {}
  for (const key in values) {
    const value = values[key]
    if (Option.isSome(value)) out[key] = value.value
  }
  return out
}

/** What the flags set, as a layer over the file: only the flags given. */
export const overrides = Effect.fnUntraced(function*(input: Flags) {
  const listen = yield* parseGiven(input.laddr, Address.parseListen)
  const metricsAddress = yield* parseGiven(input.metricsAddr, Address.parseListen)
  if (Option.isSome(input.tlsCert) !== Option.isSome(input.tlsKey)) {
    return yield* new ConfigError({ message: "--tls-cert and --tls-key go together: give both or neither" })
  }
  const tls = Option.zipWith(input.tlsCert, input.tlsKey, (cert, key) => ({ cert: resolve(cert), key: resolve(key) }))
  const allow = yield* parseFlag("allow", input.allow, Cidr.parseList)
  const deny = yield* parseFlag("deny", input.deny, Cidr.parseList)
  const acceptProxy = yield* parseFlag("accept-proxy", input.acceptProxy, Cidr.parseList)
  const send = yield* parseFlag("health-send", input.healthSend, Text.unescape)
  const expect = yield* parseFlag("health-expect", input.healthExpect, Text.unescape)
  const http = yield* parseFlag("health-http", input.healthHttp, (path) =>
    /^\/[\x21-\x7e]*$/.test(path) ? Result.succeed(path) : Result.fail(`expected an HTTP path starting with /, got ${Text.quote(path)}`))
  const workers = yield* parseFlag("workers", input.workers, Config.parseWorkers)
  const otlpEndpoint = yield* parseFlag("otlp-endpoint", input.otlpEndpoint, (url) =>
    /^https?:\/\/\S+$/.test(url) ? Result.succeed(url) : Result.fail(`expected an http:// or https:// URL, got ${Text.quote(url)}`))
  const connectionRatePerIp = yield* parseFlag("connection-rate-per-ip", input.connectionRatePerIp, (text) =>
    Result.mapError(Config.parseRate(text), (expected) => `expected ${expected}, got ${Text.quote(text)}`))
  const overrides: Config.PartialConfig = {
    ...given({
      listen,
      balancer: input.lb,
      dialTimeout: input.timeout,
      retries: input.retries,
      grace: input.grace,
      dnsRefresh: input.dnsRefresh,
      maxConnections: input.maxConnections,
      proxyProtocol: input.proxyProtocol,
      logLevel: input.logLevel,
      logFormat: input.logFormat,
      allow,
      deny,
      acceptProxy,
      workers,
      otlpInterval: input.otlpInterval
    }),
    ...(Option.isSome(otlpEndpoint) ? { otlpEndpoint } : {}),
    ...(Option.isSome(input.maxConnectionsPerIp) ? { maxConnectionsPerIp: input.maxConnectionsPerIp } : {}),
    ...(Option.isSome(connectionRatePerIp) ? { connectionRatePerIp } : {}),
    ...(Option.isSome(input.tcpKeepalive) ? { tcpKeepalive: input.tcpKeepalive } : {}),
    ...(Option.isSome(input.slowStart) ? { slowStart: input.slowStart } : {}),
    ...given({ closeOnUnhealthy: input.closeOnUnhealthy }),
    ...(Option.isSome(input.adminTokenFile) ? { adminTokenFile: Option.map(input.adminTokenFile, (file) => resolve(file)) } : {}),
    check: {
      ...(Option.isSome(send) ? { send } : {}),
      ...(Option.isSome(expect) ? { expect } : {}),
      ...(Option.isSome(http) ? { http } : {})
    },
    ...(Option.isSome(input.idleTimeout) ? { idleTimeout: input.idleTimeout } : {}),
    ...(Option.isSome(metricsAddress) ? { metricsAddress } : {}),
    ...(Option.isSome(tls) ? { tls } : {}),
    ...(Option.isSome(input.backendCa) ? { backendCa: Option.map(input.backendCa, (file) => resolve(file)) } : {}),
    ...given({ backendTls: input.backendTls }),
    health: given({
      interval: input.healthInterval,
      timeout: input.healthTimeout,
      healthyThreshold: input.healthyThreshold,
      unhealthyThreshold: input.unhealthyThreshold
    })
  }
  return overrides
})

/** The backends given as arguments. */
export const backends = (input: Flags) => Effect.forEach(input.backends, (text) => fromResult(Config.backend(text)))

/**
 * The running configuration: the defaults, then the file, then the flags
 * given; the file's backends and the command line's together (a backend
 * given twice takes the later weight).
 */
export const compose = (
  file: Config.PartialConfig | undefined,
  flagOverrides: Config.PartialConfig,
  cliBackends: ReadonlyArray<Config.Backend>
): Effect.Effect<Config.ProxyConfig, ConfigError> => {
  const base = Config.make({ backends: [] })
  const withFile = file === undefined ? base : Config.apply(base, file)
  const config = Config.apply(withFile, flagOverrides)
  const backends = [...new Map([...withFile.backends, ...cliBackends].map((b) => [b.address, b])).values()]
  if (backends.length === 0) {
    return Effect.fail(new ConfigError({ message: "no backends given (expected at least one HOST:PORT, or backends in --config)" }))
  }
  const uncertified = config.routes.find((route) => route.mode === "terminate" && Option.isNone(route.tls))
  if (uncertified !== undefined && Option.isNone(config.tls)) {
    return Effect.fail(new ConfigError({
      message: `route ${uncertified.sni.join(", ")} terminates TLS but has no certificate (give tls-cert and tls-key)`
    }))
  }
  return Effect.succeed({ ...config, backends })
}
