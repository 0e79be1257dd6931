/**
 * The proxy's metrics, with the names and labels SPEC.md lists. Counters are
 * updated once per event (bytes when a connection closes, never per chunk);
 * gauges are not updated at all: they read their owners (the open
 * connections, each backend's record) when the metrics are read. Updates are
 * plain synchronous calls: they are made on every connection, cannot fail,
 * and cost an addition each.
 *
 * @since 0.1.0
 */
import * as Context from "effect/Context"
import type * as Effect from "effect/Effect"
import type * as Scope from "effect/Scope"
import type { HealthState } from "../domain/Health.ts"

/** Why a client connection failed, as `tcp_proxy_errors_total{kind}` counts it. */
export type ErrorKind = "no_backend" | "dial" | "io" | "protocol" | "local"

/** Why a client connection was refused at once, as `tcp_proxy_connections_rejected_total{reason}` counts it. */
export type RejectReason = "max_connections" | "per_ip_limit" | "rate_limit" | "acl"

/** Which step of TLS failed, as `tcp_proxy_tls_failures_total{kind}` counts it. */
export type TlsFailureKind = "client_hello" | "handshake"

/** What a finished client connection adds to the metrics. */
export interface ConnectionSummary {
  readonly bytesIn: number
  readonly bytesOut: number
  readonly durationSeconds: number
  readonly error: ErrorKind | undefined
}

/** What a backend's gauges read: its record in a pool's registry. */
export interface BackendGauges {
  readonly activeConnections: number
  readonly state: HealthState
  readonly weight: number
}

/** A histogram series' counts: per bucket (not cumulative, in the order of its boundaries), and in total. */
export interface HistogramCounts {
  readonly buckets: ReadonlyArray<number>
  readonly count: number
  readonly sum: number
  readonly min: number
  readonly max: number
}

/**
 * What one worker's metrics hold, to be added to the control process's
 * (`absorb`): counters and histograms by series key (the name and its
 * labels), and the connections it has open. Plain data: it crosses threads.
 */
export interface MetricsExport {
  readonly counters: ReadonlyArray<readonly [key: string, value: number]>
  readonly histograms: ReadonlyArray<readonly [key: string, counts: HistogramCounts]>
  readonly connectionsActive: number
}

/** Records the proxy's metrics and renders the SIGUSR1 snapshot. */
export class Metrics extends Context.Service<Metrics, {
  /** A client connection was accepted. */
  readonly connectionAccepted: () => void
  /** A client connection was refused at once. */
  readonly connectionRejected: (reason: RejectReason) => void
  /** A client connection finished. */
  readonly connectionClosed: (summary: ConnectionSummary) => void
  /** A ClientHello could not be read, or a TLS handshake failed. */
  readonly tlsFailed: (kind: TlsFailureKind) => void
  /** `tcp_proxy_connections_active` reads `open` while the scope is open. */
  readonly trackConnections: (open: () => number) => Effect.Effect<void, never, Scope.Scope>
  /**
   * A pool holds a record of the backend: its series exist (at 0 at first)
   * and its gauges read `gauges`. A backend in several pools has one series:
   * active connections add up, it counts as healthy only when healthy in
   * every pool.
   */
  readonly trackBackend: (address: string, gauges: BackendGauges) => void
  /** A pool no longer holds the record; once no pool does, the backend's series go. */
  readonly untrackBackend: (address: string, gauges: BackendGauges) => void
  /** A dial of a real connection to a backend finished after `seconds`. */
  readonly dialed: (address: string, seconds: number, success: boolean) => void
  /** A backend connection closed after carrying these bytes. */
  readonly transferred: (address: string, sent: number, received: number) => void
  /** An active health check finished. */
  readonly healthChecked: (address: string, success: boolean) => void
  /** `tcp_proxy_workers` reads `running` while the scope is open (1 otherwise). */
  readonly trackWorkers: (running: () => number) => Effect.Effect<void, never, Scope.Scope>
  /** This process's (or worker's) own counters, histograms and open connections. */
  readonly export: () => MetricsExport
  /**
   * Adds what worker `source` last exported to every reading from now on,
   * replacing its previous export. `undefined`: the worker is gone; its
   * counters and histograms stay in the totals, its open connections leave.
   */
  readonly absorb: (source: number, exported: MetricsExport | undefined) => void
  /** Every series as sorted `name{labels}: value` lines (the SIGUSR1 snapshot). */
  readonly snapshot: Effect.Effect<string>
}>()("effect-tcp-proxy/Metrics") {}
