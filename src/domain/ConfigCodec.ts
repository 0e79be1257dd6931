/**
 * A configuration as plain data that `postMessage` can carry to a worker
 * thread, and back: the structured clone keeps plain objects, arrays,
 * strings and numbers, but not the prototypes of Effect's `Duration` and
 * `Option`, so durations travel as milliseconds and options as a value or
 * `null`.
 *
 * @since 0.1.0
 */
import * as Duration from "effect/Duration"
import * as Option from "effect/Option"
import type { PayloadCheck, ProxyConfig, Rate, Route } from "./Config.ts"

/** A payload check as plain data. */
interface EncodedCheck {
  readonly send: string | null
  readonly expect: string | null
  readonly http: string | null
}

/** A route as plain data. */
interface EncodedRoute extends Omit<Route, "balancer" | "tls" | "check"> {
  readonly balancer: Route["balancer"] extends Option.Option<infer A> ? A | null : never
  readonly tls: Route["tls"] extends Option.Option<infer A> ? A | null : never
  readonly check: EncodedCheck | null
}

type Durations = "dialTimeout" | "grace" | "dnsRefresh" | "otlpInterval"
type Optional =
  | "idleTimeout"
  | "metricsAddress"
  | "tls"
  | "backendCa"
  | "maxConnectionsPerIp"
  | "connectionRatePerIp"
  | "tcpKeepalive"
  | "slowStart"
  | "adminTokenFile"
  | "otlpEndpoint"

/** A configuration as plain data, made by {@link encode}. */
export interface EncodedConfig extends Omit<ProxyConfig, Durations | Optional | "health" | "routes" | "check"> {
  readonly dialTimeout: number
  readonly grace: number
  readonly dnsRefresh: number
  readonly otlpInterval: number
  readonly health: Omit<ProxyConfig["health"], "interval" | "timeout"> & { readonly interval: number; readonly timeout: number }
  readonly idleTimeout: number | null
  readonly metricsAddress: ProxyConfig["metricsAddress"] extends Option.Option<infer A> ? A | null : never
  readonly tls: ProxyConfig["tls"] extends Option.Option<infer A> ? A | null : never
  readonly backendCa: string | null
  readonly maxConnectionsPerIp: number | null
  readonly connectionRatePerIp: { readonly count: number; readonly per: number } | null
  readonly tcpKeepalive: number | null
  readonly slowStart: number | null
  readonly adminTokenFile: string | null
  readonly otlpEndpoint: string | null
  readonly routes: ReadonlyArray<EncodedRoute>
  readonly check: EncodedCheck
}

const nullable = <A>(option: Option.Option<A>): A | null => Option.getOrNull(option)
const millis = (option: Option.Option<Duration.Duration>): number | null => Option.getOrNull(Option.map(option, Duration.toMillis))
const duration = (ms: number | null): Option.Option<Duration.Duration> =>
  ms === null ? Option.none() : Option.some(Duration.millis(ms))

const encodeCheck = (check: PayloadCheck): EncodedCheck => ({
  send: nullable(check.send),
  expect: nullable(check.expect),
  http: nullable(check.http)
})

const decodeCheck = (check: EncodedCheck): PayloadCheck => ({
  send: Option.fromNullOr(check.send),
  expect: Option.fromNullOr(check.expect),
  http: Option.fromNullOr(check.http)
})

/** The configuration as plain data. */
export const encode = (config: ProxyConfig): EncodedConfig => ({
  ...config,
  dialTimeout: Duration.toMillis(config.dialTimeout),
  grace: Duration.toMillis(config.grace),
  dnsRefresh: Duration.toMillis(config.dnsRefresh),
  otlpInterval: Duration.toMillis(config.otlpInterval),
  health: { ...config.health, interval: Duration.toMillis(config.health.interval), timeout: Duration.toMillis(config.health.timeout) },
  idleTimeout: millis(config.idleTimeout),
  metricsAddress: nullable(config.metricsAddress),
  tls: nullable(config.tls),
  backendCa: nullable(config.backendCa),
  maxConnectionsPerIp: nullable(config.maxConnectionsPerIp),
  connectionRatePerIp: nullable(Option.map(config.connectionRatePerIp, (rate) => ({ count: rate.count, per: Duration.toMillis(rate.per) }))),
  tcpKeepalive: millis(config.tcpKeepalive),
  slowStart: millis(config.slowStart),
  adminTokenFile: nullable(config.adminTokenFile),
  otlpEndpoint: nullable(config.otlpEndpoint),
  routes: config.routes.map((route) => ({
    ...route,
    balancer: nullable(route.balancer),
    tls: nullable(route.tls),
    check: route.check === undefined ? null : encodeCheck(route.check)
  })),
  check: encodeCheck(config.check)
})

/** The configuration {@link encode} made, whole again. */
export const decode = (config: EncodedConfig): ProxyConfig => ({
  ...config,
  dialTimeout: Duration.millis(config.dialTimeout),
  grace: Duration.millis(config.grace),
  dnsRefresh: Duration.millis(config.dnsRefresh),
  otlpInterval: Duration.millis(config.otlpInterval),
  health: { ...config.health, interval: Duration.millis(config.health.interval), timeout: Duration.millis(config.health.timeout) },
  idleTimeout: duration(config.idleTimeout),
  metricsAddress: Option.fromNullOr(config.metricsAddress),
  tls: Option.fromNullOr(config.tls),
  backendCa: Option.fromNullOr(config.backendCa),
  maxConnectionsPerIp: Option.fromNullOr(config.maxConnectionsPerIp),
  connectionRatePerIp: Option.map(
    Option.fromNullOr(config.connectionRatePerIp),
    (rate): Rate => ({ count: rate.count, per: Duration.millis(rate.per) })
  ),
  tcpKeepalive: duration(config.tcpKeepalive),
  slowStart: duration(config.slowStart),
  adminTokenFile: Option.fromNullOr(config.adminTokenFile),
  otlpEndpoint: Option.fromNullOr(config.otlpEndpoint),
  routes: config.routes.map(({ check, ...route }): Route => ({
    ...route,
    balancer: Option.fromNullOr(route.balancer),
    tls: Option.fromNullOr(route.tls),
    ...(check === null ? {} : { check: decodeCheck(check) })
  })),
  check: decodeCheck(config.check)
})
