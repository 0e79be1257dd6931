/**
 * The metrics as Effect `Metric`s in the current `MetricRegistry`, so they
 * show in `PrometheusMetrics` and `Metric.snapshot` like any other metric.
 *
 * @since 0.1.0
 */
import { type Context, Effect, Layer, Metric } from "effect"
import * as Snapshot from "../domain/Snapshot.ts"
import { type ErrorKind, Metrics, type TlsFailureKind } from "../services/Metrics.ts"

const counter = (name: string, description: string) => Metric.counter(name, { description, incremental: true })

/** Bucket bounds in seconds: 1ms to about 9 hours for connections. */
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
  connectionDuration: Metric.histogram("tcp_proxy_connection_duration_seconds", {
    description: "client connection lifetime",
    boundaries: lifetimeBoundaries
  }),
  tlsFailures: counter("tcp_proxy_tls_failures_total", "TLS failures, by kind"),
  backendConnectDuration: Metric.histogram("tcp_proxy_backend_connect_duration_seconds", {
    description: "time to dial a backend",
    boundaries: connectBoundaries
  })
}

type BackendSeries = ReturnType<typeof backendSeries>

const backendSeries = (address: string) => {
  const labelled = <M extends Metric.Metric<number, unknown>>(metric: M) =>
    Metric.withAttributes(metric, { backend: address })
  return {
    bytesSent: labelled(definitions.backendBytesSent),
    bytesReceived: labelled(definitions.backendBytesReceived),
    connections: labelled(definitions.backendConnections),
    active: labelled(definitions.backendConnectionsActive),
    dialFailures: labelled(definitions.backendDialFailures),
    healthy: labelled(definitions.backendHealthy),
    connectDuration: labelled(definitions.backendConnectDuration),
    checkSuccess: Metric.withAttributes(definitions.healthChecks, { backend: address, result: "success" }),
    checkFailure: Metric.withAttributes(definitions.healthChecks, { backend: address, result: "failure" })
  }
}

/**
 * Builds the metrics service over the registry in `context`. Every series
 * that exists from the start is touched, so a scrape shows it at 0.
 */
export const make = (context: Context.Context<never>) => {
  const d = definitions
  const errors: Record<ErrorKind, Metric.Metric<number, unknown>> = {
    no_backend: Metric.withAttributes(d.errors, { kind: "no_backend" }),
    dial: Metric.withAttributes(d.errors, { kind: "dial" }),
    io: Metric.withAttributes(d.errors, { kind: "io" })
  }
  const backends = new Map<string, BackendSeries>()
  const backend = (address: string): BackendSeries => {
    let series = backends.get(address)
    if (series === undefined) {
      series = backendSeries(address)
      backends.set(address, series)
      for (const metric of Object.values(series)) metric.valueUnsafe(context)
    }
    return series
  }
  for (const metric of [d.connectionsTotal, d.connectionsActive, d.connectionsRejected, d.frontendBytesReceived, d.frontendBytesSent, d.connectionDuration]) {
    metric.valueUnsafe(context)
  }
  for (const metric of Object.values(errors)) metric.valueUnsafe(context)
  const tlsFailures: Record<TlsFailureKind, Metric.Metric<number, unknown>> = {
    client_hello: Metric.withAttributes(d.tlsFailures, { kind: "client_hello" }),
    handshake: Metric.withAttributes(d.tlsFailures, { kind: "handshake" })
  }
  for (const metric of Object.values(tlsFailures)) metric.valueUnsafe(context)

  return Metrics.of({
    connectionAccepted: Effect.sync(() => {
      d.connectionsTotal.updateUnsafe(1, context)
      d.connectionsActive.modifyUnsafe(1, context)
    }),
    connectionRejected: Effect.sync(() => d.connectionsRejected.updateUnsafe(1, context)),
    connectionClosed: (summary) =>
      Effect.sync(() => {
        d.connectionsActive.modifyUnsafe(-1, context)
        d.frontendBytesReceived.updateUnsafe(summary.bytesIn, context)
        d.frontendBytesSent.updateUnsafe(summary.bytesOut, context)
        d.connectionDuration.updateUnsafe(summary.durationSeconds, context)
        if (summary.error !== undefined) errors[summary.error].updateUnsafe(1, context)
        if (summary.backend !== undefined) {
          const series = backend(summary.backend.address)
          series.active.modifyUnsafe(-1, context)
          series.bytesSent.updateUnsafe(summary.backend.bytesSent, context)
          series.bytesReceived.updateUnsafe(summary.backend.bytesReceived, context)
        }
      }),
    dialStarted: (address) => Effect.sync(() => backend(address).active.modifyUnsafe(1, context)),
    dialFailed: (address, seconds) =>
      Effect.sync(() => {
        const series = backend(address)
        series.active.modifyUnsafe(-1, context)
        series.dialFailures.updateUnsafe(1, context)
        series.connectDuration.updateUnsafe(seconds, context)
      }),
    dialSucceeded: (address, seconds) =>
      Effect.sync(() => {
        const series = backend(address)
        series.connections.updateUnsafe(1, context)
        series.connectDuration.updateUnsafe(seconds, context)
      }),
    healthChecked: (address, success) =>
      Effect.sync(() => {
        const series = backend(address)
        ;(success ? series.checkSuccess : series.checkFailure).updateUnsafe(1, context)
      }),
    healthChanged: (address, healthy) => Effect.sync(() => backend(address).healthy.updateUnsafe(healthy ? 1 : 0, context)),
    tlsFailed: (kind) => Effect.sync(() => tlsFailures[kind].updateUnsafe(1, context)),
    snapshot: Effect.sync(() => Snapshot.render(Metric.snapshotUnsafe(context)))
  })
}

/** The metrics service over the `MetricRegistry` of the context it is built in. */
export const layer: Layer.Layer<Metrics> = Layer.effect(Metrics, Effect.map(Effect.context<never>(), make))
