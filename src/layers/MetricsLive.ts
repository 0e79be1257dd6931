/**
 * The metrics as Effect `Metric`s in the current `MetricRegistry`, so they
 * show in `PrometheusMetrics` and `Metric.snapshot` like any other metric.
 * Counters are plain numbers the registry reads when it is snapshotted
 * (`Metric.registerUnsafe`): an update is an addition, with no registry
 * lookup. Gauges read their owners at that time too. Histograms go through
 * Effect's own hooks. A backend's series exist while a pool holds it.
 *
 * @since 0.1.0
 */
import type * as Context from "effect/Context"
import * as Effect from "effect/Effect"
import * as Layer from "effect/Layer"
import * as Metric from "effect/Metric"
import * as Snapshot from "../domain/Snapshot.ts"
import {
  type BackendGauges,
  type ErrorKind,
  Metrics,
  type RejectReason,
  type TlsFailureKind
} from "../services/Metrics.ts"

const counter = (name: string, description: string) => Metric.counter(name, { description, incremental: true })

/** Bucket bounds in seconds: 1ms to about 4.7 hours for connections. */
const lifetimeBoundaries = Metric.exponentialBoundaries({ start: 0.001, factor: 4, count: 13 })
/** Bucket bounds in seconds: 0.1ms to about 6.5s for dials. */
const connectBoundaries = Metric.exponentialBoundaries({ start: 0.0001, factor: 2, count: 17 })

/** The metric definitions, by the names SPEC.md gives them. */
export const definitions = {
  connectionsTotal: counter("tcp_proxy_connections_total", "client connections accepted"),
  connectionsActive: Metric.gauge("tcp_proxy_connections_active", { description: "client connections open now" }),
  connectionsRejected: counter("tcp_proxy_connections_rejected_total", "client connections refused at once, by reason"),
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
  backendWeight: Metric.gauge("tcp_proxy_backend_weight", { description: "the weight in force now" }),
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

/** A counter series' value, kept as a plain number. */
interface Cell {
  value: number
}

/** A series registered in the metric registry, and how to take it out again. */
interface Registered {
  readonly remove: () => void
}

/** Registers a counter series read from a cell. */
const counterCell = (metric: Metric.Counter<number>, context: Context.Context<never>): Cell & Registered => {
  const cell = { value: 0, remove: () => {} }
  cell.remove = Metric.registerUnsafe(metric, context, {
    get: () => ({ count: cell.value, incremental: true }),
    update: () => {},
    modify: () => {}
  }).remove
  return cell
}

/** Registers a gauge series that reads `read` when the registry is read. */
const gaugeReading = (metric: Metric.Gauge<number>, context: Context.Context<never>, read: () => number): Registered =>
  Metric.registerUnsafe(metric, context, { get: () => ({ value: read() }), update: () => {}, modify: () => {} })

/** A counter series with one label. */
const labelledCell = (metric: Metric.Counter<number>, label: string, value: string, context: Context.Context<never>) =>
  counterCell(Metric.withAttributes(metric, { [label]: value }), context)

/** The series of one backend, and the pools' records its gauges read. */
class BackendSeries {
  readonly holders = new Set<BackendGauges>()
  readonly bytesSent: Cell & Registered
  readonly bytesReceived: Cell & Registered
  readonly connections: Cell & Registered
  readonly dialFailures: Cell & Registered
  readonly checkSuccess: Cell & Registered
  readonly checkFailure: Cell & Registered
  readonly connectDuration: Metric.Histogram<number>
  readonly gauges: ReadonlyArray<Registered>
  readonly context: Context.Context<never>
  constructor(address: string, context: Context.Context<never>) {
    this.context = context
    const d = definitions
    const label = { backend: address }
    const cell = (metric: Metric.Counter<number>, extra: Record<string, string> = {}) =>
      counterCell(Metric.withAttributes(metric, { ...label, ...extra }), context)
    this.bytesSent = cell(d.backendBytesSent)
    this.bytesReceived = cell(d.backendBytesReceived)
    this.connections = cell(d.backendConnections)
    this.dialFailures = cell(d.backendDialFailures)
    this.checkSuccess = cell(d.healthChecks, { result: "success" })
    this.checkFailure = cell(d.healthChecks, { result: "failure" })
    this.connectDuration = Metric.withAttributes(d.backendConnectDuration, label)
    this.connectDuration.valueUnsafe(context)
    this.gauges = [
      gaugeReading(Metric.withAttributes(d.backendConnectionsActive, label), context, () => {
        let sum = 0
        for (const holder of this.holders) sum += holder.activeConnections
        return sum
      }),
      gaugeReading(Metric.withAttributes(d.backendHealthy, label), context, () => {
        for (const holder of this.holders) if (holder.state !== "HEALTHY") return 0
        return 1
      }),
      gaugeReading(Metric.withAttributes(d.backendWeight, label), context, () => {
        let weight = 0
        for (const holder of this.holders) weight = Math.max(weight, holder.weight)
        return weight
      })
    ]
  }
  remove(): void {
    for (const cell of [this.bytesSent, this.bytesReceived, this.connections, this.dialFailures, this.checkSuccess, this.checkFailure]) {
      cell.remove()
    }
    for (const gauge of this.gauges) gauge.remove()
    Metric.removeUnsafe(this.connectDuration, this.context)
  }
}

/** Builds the metrics service over the registry in `context`; every series shows from the start, at 0. */
export const make = (context: Context.Context<never>) => {
  const d = definitions
  const total = counterCell(d.connectionsTotal, context)
  const bytesReceived = counterCell(d.frontendBytesReceived, context)
  const bytesSent = counterCell(d.frontendBytesSent, context)
  const error = (kind: ErrorKind) => labelledCell(d.errors, "kind", kind, context)
  const errors: Record<ErrorKind, Cell> = {
    no_backend: error("no_backend"),
    dial: error("dial"),
    io: error("io"),
    protocol: error("protocol"),
    local: error("local")
  }
  const reject = (reason: RejectReason) => labelledCell(d.connectionsRejected, "reason", reason, context)
  const rejected: Record<RejectReason, Cell> = {
    max_connections: reject("max_connections"),
    per_ip_limit: reject("per_ip_limit"),
    rate_limit: reject("rate_limit"),
    acl: reject("acl")
  }
  const tlsFailure = (kind: TlsFailureKind) => labelledCell(d.tlsFailures, "kind", kind, context)
  const tlsFailures: Record<TlsFailureKind, Cell> = {
    client_hello: tlsFailure("client_hello"),
    handshake: tlsFailure("handshake")
  }
  d.connectionDuration.valueUnsafe(context)
  const backends = new Map<string, BackendSeries>()

  return Metrics.of({
    connectionAccepted: () => {
      total.value++
    },
    connectionRejected: (reason) => {
      rejected[reason].value++
    },
    connectionClosed: (summary) => {
      bytesReceived.value += summary.bytesIn
      bytesSent.value += summary.bytesOut
      d.connectionDuration.updateUnsafe(summary.durationSeconds, context)
      if (summary.error !== undefined) errors[summary.error].value++
    },
    tlsFailed: (kind) => {
      tlsFailures[kind].value++
    },
    trackConnections: (open) =>
      Effect.acquireRelease(
        Effect.sync(() => gaugeReading(d.connectionsActive, context, open)),
        (registered) => Effect.sync(() => registered.remove())
      ),
    trackBackend: (address, gauges) => {
      let series = backends.get(address)
      if (series === undefined) {
        series = new BackendSeries(address, context)
        backends.set(address, series)
      }
      series.holders.add(gauges)
    },
    untrackBackend: (address, gauges) => {
      const series = backends.get(address)
      if (series === undefined || !series.holders.delete(gauges) || series.holders.size > 0) return
      backends.delete(address)
      series.remove()
    },
    dialed: (address, seconds, success) => {
      const series = backends.get(address)
      if (series === undefined) return
      ;(success ? series.connections : series.dialFailures).value++
      series.connectDuration.updateUnsafe(seconds, context)
    },
    transferred: (address, sent, received) => {
      const series = backends.get(address)
      if (series === undefined) return
      series.bytesSent.value += sent
      series.bytesReceived.value += received
    },
    healthChecked: (address, success) => {
      const series = backends.get(address)
      if (series !== undefined) (success ? series.checkSuccess : series.checkFailure).value++
    },
    snapshot: Effect.sync(() => Snapshot.render(Metric.snapshotUnsafe(context)))
  })
}

/** The metrics service over the `MetricRegistry` of the context it is built in. */
export const layer: Layer.Layer<Metrics> = Layer.effect(Metrics, Effect.map(Effect.context<never>(), make))
