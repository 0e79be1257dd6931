/**
 * The metrics as Effect `Metric`s in the current `MetricRegistry`, so they
 * show in `PrometheusMetrics` and `Metric.snapshot` like any other metric.
 * Counters and histograms are plain numbers the registry reads when it is
 * snapshotted (`Metric.registerUnsafe`): an update is an addition, with no
 * registry lookup. Gauges read their owners at that time too. A backend's
 * series exist while a pool holds it. With workers, every reading adds what
 * the workers last exported (`absorb`), so `/metrics`, the SIGUSR1 snapshot
 * and every exporter describe the whole proxy.
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
  type HistogramCounts,
  Metrics,
  type MetricsExport,
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
  workers: Metric.gauge("tcp_proxy_workers", { description: "worker processes running (1 without --workers)" }),
  connectionDuration: Metric.histogram("tcp_proxy_connection_duration_seconds", {
    description: "client connection lifetime",
    boundaries: lifetimeBoundaries
  }),
  backendConnectDuration: Metric.histogram("tcp_proxy_backend_connect_duration_seconds", {
    description: "time to dial a backend",
    boundaries: connectBoundaries
  })
}

/** A series' identity across threads: its name and its labels, sorted. */
const seriesKey = (name: string, attributes: Readonly<Record<string, string>>): string => {
  let key = name
  for (const label of Object.keys(attributes).sort()) key += `\u0000${label}=${attributes[label]}`
  return key
}

/** A counter series' value, kept as a plain number, and how to take the series out again. */
interface Cell {
  value: number
  readonly remove: () => void
}

/** A histogram series' observations, counted per bucket as they come. */
class HistogramCell {
  readonly boundaries: ReadonlyArray<number>
  readonly buckets: Float64Array
  count = 0
  sum = 0
  min = Number.MAX_VALUE
  max = -Number.MAX_VALUE
  constructor(boundaries: ReadonlyArray<number>) {
    this.boundaries = boundaries
    this.buckets = new Float64Array(boundaries.length)
  }
  observe(value: number): void {
    const bounds = this.boundaries
    let from = 0
    let to = bounds.length
    // The first boundary at or above the value.
    while (from < to) {
      const mid = (from + to) >>> 1
      if (value <= bounds[mid]!) to = mid
      else from = mid + 1
    }
    if (from < bounds.length) this.buckets[from]!++
    this.count++
    this.sum += value
    if (value < this.min) this.min = value
    if (value > this.max) this.max = value
  }
  counts(): HistogramCounts {
    return { buckets: Array.from(this.buckets), count: this.count, sum: this.sum, min: this.min, max: this.max }
  }
}

const noCounts: HistogramCounts = { buckets: [], count: 0, sum: 0, min: Number.MAX_VALUE, max: -Number.MAX_VALUE }

/** Two histograms' counts added up (over the same boundaries). */
const addCounts = (a: HistogramCounts, b: HistogramCounts): HistogramCounts => ({
  buckets: a.buckets.length >= b.buckets.length
    ? a.buckets.map((n, i) => n + (b.buckets[i] ?? 0))
    : b.buckets.map((n, i) => n + (a.buckets[i] ?? 0)),
  count: a.count + b.count,
  sum: a.sum + b.sum,
  min: Math.min(a.min, b.min),
  max: Math.max(a.max, b.max)
})

/** What other threads add to every reading: their counters, histograms and open connections. */
interface Absorbed {
  readonly counters: ReadonlyMap<string, number>
  readonly histograms: ReadonlyMap<string, HistogramCounts>
  readonly connectionsActive: number
}

const nothingAbsorbed: Absorbed = { counters: new Map(), histograms: new Map(), connectionsActive: 0 }

/** Registers a gauge series that reads `read` when the registry is read. */
const gaugeReading = (metric: Metric.Gauge<number>, context: Context.Context<never>, read: () => number) =>
  Metric.registerUnsafe(metric, context, { get: () => ({ value: read() }), update: () => {}, modify: () => {} })

/** Builds the metrics service over the registry in `context`; every series shows from the start, at 0. */
export const make = (context: Context.Context<never>) => {
  const d = definitions
  /** Live series by key, for `export`. */
  const counters = new Map<string, Cell>()
  const histograms = new Map<string, HistogramCell>()
  /** Workers' last exports, and what workers that are gone had counted. */
  const sources = new Map<number, MetricsExport>()
  const retired = { counters: new Map<string, number>(), histograms: new Map<string, HistogramCounts>() }
  let absorbed = nothingAbsorbed

  /** Registers a counter series read from a cell, plus what workers counted in it. */
  const counterCell = (metric: Metric.Counter<number>, attributes: Record<string, string> = {}): Cell => {
    const key = seriesKey(metric.id, attributes)
    const registration = Metric.registerUnsafe(Metric.withAttributes(metric, attributes), context, {
      get: () => ({ count: cell.value + (absorbed.counters.get(key) ?? 0), incremental: true }),
      update: () => {},
      modify: () => {}
    })
    const cell: Cell = {
      value: 0,
      remove: () => {
        registration.remove()
        if (counters.get(key) === cell) counters.delete(key)
      }
    }
    counters.set(key, cell)
    return cell
  }

  /** Registers a histogram series read from a cell, plus what workers observed in it. */
  const histogramCell = (metric: Metric.Histogram<number>, boundaries: ReadonlyArray<number>, attributes: Record<string, string> = {}) => {
    const key = seriesKey(metric.id, attributes)
    const cell = new HistogramCell(boundaries)
    const registration = Metric.registerUnsafe(Metric.withAttributes(metric, attributes), context, {
      get: () => {
        const counts = addCounts(cell.counts(), absorbed.histograms.get(key) ?? noCounts)
        let cumulated = 0
        return {
          buckets: boundaries.map((boundary, i): [number, number] => [boundary, cumulated += counts.buckets[i] ?? 0]),
          count: counts.count,
          sum: counts.sum,
          min: counts.min,
          max: counts.max
        }
      },
      update: () => {},
      modify: () => {}
    })
    histograms.set(key, cell)
    return {
      cell,
      remove: () => {
        registration.remove()
        if (histograms.get(key) === cell) histograms.delete(key)
      }
    }
  }

  /** The series of one backend, and the pools' records its gauges read. */
  const backendSeries = (address: string) => {
    const holders = new Set<BackendGauges>()
    const label = { backend: address }
    const connectDuration = histogramCell(d.backendConnectDuration, connectBoundaries, label)
    const series = {
      holders,
      bytesSent: counterCell(d.backendBytesSent, label),
      bytesReceived: counterCell(d.backendBytesReceived, label),
      connections: counterCell(d.backendConnections, label),
      dialFailures: counterCell(d.backendDialFailures, label),
      checkSuccess: counterCell(d.healthChecks, { ...label, result: "success" }),
      checkFailure: counterCell(d.healthChecks, { ...label, result: "failure" }),
      connectDuration: connectDuration.cell
    }
    const gauges = [
      gaugeReading(Metric.withAttributes(d.backendConnectionsActive, label), context, () => {
        let sum = 0
        for (const holder of holders) sum += holder.activeConnections
        return sum
      }),
      gaugeReading(Metric.withAttributes(d.backendHealthy, label), context, () => {
        for (const holder of holders) if (holder.state !== "HEALTHY") return 0
        return 1
      }),
      gaugeReading(Metric.withAttributes(d.backendWeight, label), context, () => {
        let weight = 0
        for (const holder of holders) weight = Math.max(weight, holder.weight)
        return weight
      })
    ]
    const remove = () => {
      for (const cell of [series.bytesSent, series.bytesReceived, series.connections, series.dialFailures]) cell.remove()
      series.checkSuccess.remove()
      series.checkFailure.remove()
      connectDuration.remove()
      for (const gauge of gauges) gauge.remove()
    }
    return { ...series, remove }
  }

  const total = counterCell(d.connectionsTotal)
  const bytesReceived = counterCell(d.frontendBytesReceived)
  const bytesSent = counterCell(d.frontendBytesSent)
  const error = (kind: ErrorKind) => counterCell(d.errors, { kind })
  const errors: Record<ErrorKind, Cell> = {
    no_backend: error("no_backend"),
    dial: error("dial"),
    io: error("io"),
    protocol: error("protocol"),
    local: error("local")
  }
  const reject = (reason: RejectReason) => counterCell(d.connectionsRejected, { reason })
  const rejected: Record<RejectReason, Cell> = {
    max_connections: reject("max_connections"),
    per_ip_limit: reject("per_ip_limit"),
    rate_limit: reject("rate_limit"),
    acl: reject("acl")
  }
  const tlsFailure = (kind: TlsFailureKind) => counterCell(d.tlsFailures, { kind })
  const tlsFailures: Record<TlsFailureKind, Cell> = {
    client_hello: tlsFailure("client_hello"),
    handshake: tlsFailure("handshake")
  }
  const connectionDuration = histogramCell(d.connectionDuration, lifetimeBoundaries).cell
  const backends = new Map<string, ReturnType<typeof backendSeries>>()
  /** Who counts this process's open connections, and its running workers. */
  let open = () => 0
  let running = () => 1
  gaugeReading(d.workers, context, () => running())

  /** The sum of the retired counts and the workers' last exports. */
  const reabsorb = () => {
    const counted = new Map(retired.counters)
    const observed = new Map(retired.histograms)
    let connectionsActive = 0
    for (const exported of sources.values()) {
      for (const [key, value] of exported.counters) counted.set(key, (counted.get(key) ?? 0) + value)
      for (const [key, counts] of exported.histograms) observed.set(key, addCounts(observed.get(key) ?? noCounts, counts))
      connectionsActive += exported.connectionsActive
    }
    absorbed = { counters: counted, histograms: observed, connectionsActive }
  }

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
      connectionDuration.observe(summary.durationSeconds)
      if (summary.error !== undefined) errors[summary.error].value++
    },
    tlsFailed: (kind) => {
      tlsFailures[kind].value++
    },
    trackConnections: (read) =>
      Effect.acquireRelease(
        Effect.sync(() => {
          open = read
          return gaugeReading(d.connectionsActive, context, () => read() + absorbed.connectionsActive)
        }),
        (registered) =>
          Effect.sync(() => {
            open = () => 0
            registered.remove()
          })
      ),
    trackWorkers: (read) =>
      Effect.acquireRelease(
        Effect.sync(() => {
          running = read
        }),
        () =>
          Effect.sync(() => {
            running = () => 1
          })
      ),
    trackBackend: (address, gauges) => {
      let series = backends.get(address)
      if (series === undefined) {
        series = backendSeries(address)
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
      series.connectDuration.observe(seconds)
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
    export: () => ({
      counters: Array.from(counters, ([key, cell]) => [key, cell.value] as const),
      histograms: Array.from(histograms, ([key, cell]) => [key, cell.counts()] as const).filter(([, counts]) => counts.count > 0),
      connectionsActive: open()
    }),
    absorb: (source, exported) => {
      if (exported === undefined) {
        const last = sources.get(source)
        if (last === undefined) return
        sources.delete(source)
        for (const [key, value] of last.counters) retired.counters.set(key, (retired.counters.get(key) ?? 0) + value)
        for (const [key, counts] of last.histograms) {
          retired.histograms.set(key, addCounts(retired.histograms.get(key) ?? noCounts, counts))
        }
      } else sources.set(source, exported)
      reabsorb()
    },
    snapshot: Effect.sync(() => Snapshot.render(Metric.snapshotUnsafe(context)))
  })
}

/** The metrics service over the `MetricRegistry` of the context it is built in. */
export const layer: Layer.Layer<Metrics> = Layer.effect(Metrics, Effect.map(Effect.context<never>(), make))
