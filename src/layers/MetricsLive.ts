/**
 * The metrics as Effect `Metric`s in the current `MetricRegistry`, so they
 * show in `PrometheusMetrics` and `Metric.snapshot` like any other metric.
 * Counters and gauges are plain numbers the registry reads when it is
 * snapshotted (`Metric.registerUnsafe`): a connection adds to them without a
 * registry lookup. Histograms go through Effect's own hooks.
 *
 * @since 0.1.0
 */
import type * as Context from "effect/Context"
import * as Effect from "effect/Effect"
import * as Layer from "effect/Layer"
import * as Metric from "effect/Metric"
import * as Snapshot from "../domain/Snapshot.ts"
import { type ErrorKind, Metrics, type TlsFailureKind } from "../services/Metrics.ts"

const counter = (name: string, description: string) => Metric.counter(name, { description, incremental: true })

/** Bucket bounds in seconds: 1ms to about 4.7 hours for connections. */
const lifetimeBoundaries = Metric.exponentialBoundaries({ start: 0.001, factor: 4, count: 13 })
/** Bucket bounds in seconds: 0.1ms to about 6.5s for dials. */
const connectBoundaries = Metric.exponentialBoundaries({ start: 0.0001, factor: 2, count: 17 })

/** The metric definitions, by the names SPEC.md gives them. */
export const definitions = {
  connectionsTotal: counter("tcp_proxy_connections_total", "client connections accepted"),
  connectionsActive: Metric.gauge("tcp_proxy_connections_active", { description: "client connections open now" }),
  connectionsRejected: counter("tcp_proxy_connections_rejected_total", "client connections closed by --max-connections"),
  errors: counter("tcp_proxy_errors_total", "client connections that failed, by kind"),
  frontendBytesReceived: counter("tcp_proxy_frontend_bytes_received_total", "bytes read from clients"),
  frontendBytesSent: counter("tcp_proxy_frontend_bytes_sent_total", "bytes written to clients"),
  backendBytesSent: counter("tcp_proxy_backend_bytes_sent_total", "bytes written to a backend"),
  backendBytesReceived: counter("tcp_proxy_backend_bytes_received_total", "bytes read from a backend"),
  backendConnections: counter("tcp_proxy_backend_connections_total", "connections opened to a backend"),
  backendConnectionsActive: Metric.gauge("tcp_proxy_backend_connections_active", {
    description: "connections open (or dialling) to a backend now"
  }),
  backendDialFailures: counter("tcp_proxy_backend_dial_failures_total", "failed dials of real connections"),
  backendHealthy: Metric.gauge("tcp_proxy_backend_healthy", { description: "1 when HEALTHY, 0 when UNHEALTHY" }),
  healthChecks: counter("tcp_proxy_health_checks_total", "active health checks, by result"),
  tlsFailures: counter("tcp_proxy_tls_failures_total", "TLS failures, by kind"),
  connectionDuration: Metric.histogram("tcp_proxy_connection_duration_seconds", {
    description: "client connection lifetime",
    boundaries: lifetimeBoundaries
  }),
  backendConnectDuration: Metric.histogram("tcp_proxy_backend_connect_duration_seconds", {
    description: "time to dial a backend",
    boundaries: connectBoundaries
  })
}

/** A series' value, kept as a plain number. */
interface Cell {
  value: number
}

const ignore = () => {}

/** Registers a counter series read from a cell. */
const counterCell = (metric: Metric.Counter<number>, context: Context.Context<never>): Cell => {
  const cell: Cell = { value: 0 }
  Metric.registerUnsafe(metric, context, {
    get: () => ({ count: cell.value, incremental: true }),
    update: ignore,
    modify: ignore
  })
  return cell
}

/** Registers a gauge series read from a cell. */
const gaugeCell = (metric: Metric.Gauge<number>, context: Context.Context<never>): Cell => {
  const cell: Cell = { value: 0 }
  Metric.registerUnsafe(metric, context, { get: () => ({ value: cell.value }), update: ignore, modify: ignore })
  return cell
}

/** The series of one backend. */
const backendSeries = (address: string, context: Context.Context<never>) => {
  const d = definitions
  const labelled = { backend: address }
  const connectDuration = Metric.withAttributes(d.backendConnectDuration, labelled)
  connectDuration.valueUnsafe(context)
  return {
    bytesSent: counterCell(Metric.withAttributes(d.backendBytesSent, labelled), context),
    bytesReceived: counterCell(Metric.withAttributes(d.backendBytesReceived, labelled), context),
    connections: counterCell(Metric.withAttributes(d.backendConnections, labelled), context),
    active: gaugeCell(Metric.withAttributes(d.backendConnectionsActive, labelled), context),
    dialFailures: counterCell(Metric.withAttributes(d.backendDialFailures, labelled), context),
    healthy: gaugeCell(Metric.withAttributes(d.backendHealthy, labelled), context),
    checkSuccess: counterCell(Metric.withAttributes(d.healthChecks, { ...labelled, result: "success" }), context),
    checkFailure: counterCell(Metric.withAttributes(d.healthChecks, { ...labelled, result: "failure" }), context),
    connectDuration
  }
}

type BackendSeries = ReturnType<typeof backendSeries>

/** Builds the metrics service over the registry in `context`; every series shows from the start, at 0. */
export const make = (context: Context.Context<never>) => {
  const d = definitions
  const total = counterCell(d.connectionsTotal, context)
  const active = gaugeCell(d.connectionsActive, context)
  const rejected = counterCell(d.connectionsRejected, context)
  const bytesReceived = counterCell(d.frontendBytesReceived, context)
  const bytesSent = counterCell(d.frontendBytesSent, context)
  const errors: Record<ErrorKind, Cell> = {
    no_backend: counterCell(Metric.withAttributes(d.errors, { kind: "no_backend" }), context),
    dial: counterCell(Metric.withAttributes(d.errors, { kind: "dial" }), context),
    io: counterCell(Metric.withAttributes(d.errors, { kind: "io" }), context)
  }
  const tlsFailures: Record<TlsFailureKind, Cell> = {
    client_hello: counterCell(Metric.withAttributes(d.tlsFailures, { kind: "client_hello" }), context),
    handshake: counterCell(Metric.withAttributes(d.tlsFailures, { kind: "handshake" }), context)
  }
  d.connectionDuration.valueUnsafe(context)
  const backends = new Map<string, BackendSeries>()
  const backend = (address: string): BackendSeries => {
    let series = backends.get(address)
    if (series === undefined) {
      series = backendSeries(address, context)
      backends.set(address, series)
    }
    return series
  }

  return Metrics.of({
    connectionAccepted: Effect.sync(() => {
      total.value++
      active.value++
    }),
    connectionRejected: Effect.sync(() => {
      rejected.value++
    }),
    connectionClosed: (summary) =>
      Effect.sync(() => {
        active.value--
        bytesReceived.value += summary.bytesIn
        bytesSent.value += summary.bytesOut
        d.connectionDuration.updateUnsafe(summary.durationSeconds, context)
        if (summary.error !== undefined) errors[summary.error].value++
        if (summary.backend !== undefined) {
          const series = backend(summary.backend.address)
          series.active.value--
          series.bytesSent.value += summary.backend.bytesSent
          series.bytesReceived.value += summary.backend.bytesReceived
        }
      }),
    dialStarted: (address) =>
      Effect.sync(() => {
        backend(address).active.value++
      }),
    dialFailed: (address, seconds) =>
      Effect.sync(() => {
        const series = backend(address)
        series.active.value--
        series.dialFailures.value++
        series.connectDuration.updateUnsafe(seconds, context)
      }),
    dialSucceeded: (address, seconds) =>
      Effect.sync(() => {
        const series = backend(address)
        series.connections.value++
        series.connectDuration.updateUnsafe(seconds, context)
      }),
    healthChecked: (address, success) =>
      Effect.sync(() => {
        const series = backend(address)
        ;(success ? series.checkSuccess : series.checkFailure).value++
      }),
    healthChanged: (address, healthy) =>
      Effect.sync(() => {
        backend(address).healthy.value = healthy ? 1 : 0
      }),
    tlsFailed: (kind) =>
      Effect.sync(() => {
        tlsFailures[kind].value++
      }),
    snapshot: Effect.sync(() => Snapshot.render(Metric.snapshotUnsafe(context)))
  })
}

/** The metrics service over the `MetricRegistry` of the context it is built in. */
export const layer: Layer.Layer<Metrics> = Layer.effect(Metrics, Effect.map(Effect.context<never>(), make))
