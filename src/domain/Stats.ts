/**
 * The dashboard's history: readings of the metric registry taken at a fixed
 * interval, kept in a ring of bounded size, and turned into per-second rates
 * for `GET /stats`. Pure: the sampler feeds it, nothing here reads a clock.
 *
 * @since 0.1.0
 */
import type * as Metric from "effect/Metric"
import type { HealthState } from "./Health.ts"

/** The proxy's totals at one moment: counters as they stand, `active` as it is now. */
export interface TotalsReading {
  /** `tcp_proxy_connections_total` */
  readonly connections: number
  /** `tcp_proxy_connections_active` */
  readonly active: number
  /** `tcp_proxy_frontend_bytes_received_total`: from clients. */
  readonly bytesIn: number
  /** `tcp_proxy_frontend_bytes_sent_total`: to clients. */
  readonly bytesOut: number
  /** `tcp_proxy_errors_total`, every kind. */
  readonly errors: number
}

/** One backend at one moment. */
export interface BackendReading {
  /** `tcp_proxy_backend_connections_total` */
  readonly connections: number
  /** `tcp_proxy_backend_connections_active` */
  readonly active: number
  /** `tcp_proxy_backend_bytes_received_total`: from the backend. */
  readonly bytesIn: number
  /** `tcp_proxy_backend_bytes_sent_total`: to the backend. */
  readonly bytesOut: number
  /** `tcp_proxy_backend_dial_failures_total` */
  readonly errors: number
  /** Its health; UNHEALTHY when any pool holding it says so; undefined when no pool holds it. */
  readonly state: HealthState | undefined
}

/** One reading of everything, at `at` (milliseconds since the epoch). */
export interface Sample {
  readonly at: number
  readonly totals: TotalsReading
  readonly backends: ReadonlyMap<string, BackendReading>
}

/** Zeroed readings, for series not (yet) in the registry. */
const zeroTotals: TotalsReading = { connections: 0, active: 0, bytesIn: 0, bytesOut: 0, errors: 0 }

const numeric = (value: number | bigint): number => typeof value === "bigint" ? Number(value) : value

/**
 * Reads a sample out of a registry snapshot (`Metric.snapshotUnsafe`) and
 * the backends' states (as the pools' registries hold them), taken at `at`.
 * Every backend with a series or a state is in the sample.
 */
export const readSample = (
  snapshot: ReadonlyArray<Metric.Metric.Snapshot>,
  states: ReadonlyMap<string, HealthState>,
  at: number
): Sample => {
  const totals = { ...zeroTotals }
  const backends = new Map<string, { -readonly [K in keyof BackendReading]: BackendReading[K] }>()
  const backend = (address: string) => {
    let reading = backends.get(address)
    if (reading === undefined) {
      reading = { connections: 0, active: 0, bytesIn: 0, bytesOut: 0, errors: 0, state: states.get(address) }
      backends.set(address, reading)
    }
    return reading
  }
  for (const address of states.keys()) backend(address)
  for (const series of snapshot) {
    const value = series.type === "Counter"
      ? numeric(series.state.count)
      : series.type === "Gauge"
      ? numeric(series.state.value)
      : undefined
    if (value === undefined) continue
    const address = series.attributes?.["backend"]
    switch (series.id) {
      case "tcp_proxy_connections_total":
        totals.connections += value
        break
      case "tcp_proxy_connections_active":
        totals.active += value
        break
      case "tcp_proxy_frontend_bytes_received_total":
        totals.bytesIn += value
        break
      case "tcp_proxy_frontend_bytes_sent_total":
        totals.bytesOut += value
        break
      case "tcp_proxy_errors_total":
        totals.errors += value
        break
      case "tcp_proxy_backend_connections_total":
        if (address !== undefined) backend(address).connections += value
        break
      case "tcp_proxy_backend_connections_active":
        if (address !== undefined) backend(address).active += value
        break
      case "tcp_proxy_backend_bytes_received_total":
        if (address !== undefined) backend(address).bytesIn += value
        break
      case "tcp_proxy_backend_bytes_sent_total":
        if (address !== undefined) backend(address).bytesOut += value
        break
      case "tcp_proxy_backend_dial_failures_total":
        if (address !== undefined) backend(address).errors += value
        break
    }
  }
  return { at, totals, backends }
}

/** A series over the samples: one value per sample, `null` where there is none (a gap in a chart). */
export type Values = ReadonlyArray<number | null>

/** Rates per second between consecutive samples, and active connections at each sample. */
export interface Series {
  readonly connections: Values
  readonly active: Values
  readonly bytesIn: Values
  readonly bytesOut: Values
  readonly errors: Values
}

/** A change of a backend's health within the window. */
export interface StateChange {
  readonly at: number
  readonly state: HealthState
}

/** A backend's series: its rates, its health at each sample (1 HEALTHY, 0 UNHEALTHY) and its changes. */
export interface BackendSeries extends Series {
  readonly address: string
  readonly healthy: Values
  readonly changes: ReadonlyArray<StateChange>
}

/** What `GET /stats` serves: the samples' times, the totals, and each backend seen in the window. */
export interface Feed {
  /** Milliseconds between samples. */
  readonly interval: number
  /** Each sample's time, in milliseconds since the epoch, oldest first. */
  readonly time: ReadonlyArray<number>
  readonly totals: Series
  readonly backends: ReadonlyArray<BackendSeries>
}

type Reading = Omit<BackendReading, "state">

/**
 * Per-second rates of a counter between consecutive readings (`null` for the
 * first, or where a reading is missing); a counter that went down (a backend
 * that left and came back) restarted at 0.
 */
const rates = (samples: ReadonlyArray<Sample>, read: (sample: Sample) => number | undefined): Values =>
  samples.map((sample, i) => {
    const previous = i === 0 ? undefined : samples[i - 1]
    if (previous === undefined) return null
    const [now, before] = [read(sample), read(previous)]
    const seconds = (sample.at - previous.at) / 1000
    if (now === undefined || before === undefined || seconds <= 0) return null
    return (now >= before ? now - before : now) / seconds
  })

const seriesOf = (samples: ReadonlyArray<Sample>, read: (sample: Sample) => Reading | undefined): Series => ({
  connections: rates(samples, (sample) => read(sample)?.connections),
  active: samples.map((sample) => read(sample)?.active ?? null),
  bytesIn: rates(samples, (sample) => read(sample)?.bytesIn),
  bytesOut: rates(samples, (sample) => read(sample)?.bytesOut),
  errors: rates(samples, (sample) => read(sample)?.errors)
})

/** The feed over `samples` (oldest first), taken every `interval` milliseconds; newest backends first. */
export const feed = (samples: ReadonlyArray<Sample>, interval: number): Feed => {
  const addresses = new Set<string>()
  for (let i = samples.length - 1; i >= 0; i--) for (const address of samples[i]!.backends.keys()) addresses.add(address)
  const backends = [...addresses].map((address): BackendSeries => {
    const changes: Array<StateChange> = []
    let last: HealthState | undefined
    for (const sample of samples) {
      const state = sample.backends.get(address)?.state
      if (state !== undefined && last !== undefined && state !== last) changes.push({ at: sample.at, state })
      if (state !== undefined) last = state
    }
    return {
      address,
      ...seriesOf(samples, (sample) => sample.backends.get(address)),
      healthy: samples.map((sample) => {
        const state = sample.backends.get(address)?.state
        return state === undefined ? null : state === "HEALTHY" ? 1 : 0
      }),
      changes
    }
  })
  return { interval, time: samples.map((sample) => sample.at), totals: seriesOf(samples, (sample) => sample.totals), backends }
}

/** A ring of at most `capacity` samples: pushing onto a full ring drops the oldest. */
export class Ring {
  readonly capacity: number
  private readonly slots: Array<Sample | undefined>
  private next = 0
  private size = 0
  constructor(capacity: number) {
    this.capacity = Math.max(1, Math.floor(capacity))
    this.slots = new Array<Sample | undefined>(this.capacity).fill(undefined)
  }
  /** Adds the newest sample. */
  push(sample: Sample): void {
    this.slots[this.next] = sample
    this.next = (this.next + 1) % this.capacity
    this.size = Math.min(this.size + 1, this.capacity)
  }
  /** The samples held, oldest first. */
  samples(): ReadonlyArray<Sample> {
    const start = (this.next - this.size + this.capacity) % this.capacity
    const out: Array<Sample> = []
    for (let i = 0; i < this.size; i++) {
      const sample = this.slots[(start + i) % this.capacity]
      if (sample !== undefined) out.push(sample)
    }
    return out
  }
}
