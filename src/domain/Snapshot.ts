/**
 * The SIGUSR1 snapshot: one `name{labels}: value` line per series, labels
 * sorted by name, histograms as `_count` and `_sum`, lines sorted by text.
 *
 * @since 0.1.0
 */
import type * as Metric from "effect/Metric"

const escape = (value: string): string => value.replace(/\\/g, "\\\\").replace(/"/g, "\\\"").replace(/\n/g, "\\n")

const labels = (attributes: Metric.Metric.AttributeSet | undefined): string => {
  if (attributes === undefined) return ""
  const names = Object.keys(attributes).sort()
  return names.length === 0 ? "" : `{${names.map((name) => `${name}="${escape(attributes[name]!)}"`).join(",")}}`
}

/** Renders the counters, gauges and histograms whose names start with `prefix`. */
export const render = (snapshots: ReadonlyArray<Metric.Metric.Snapshot>, prefix = "tcp_proxy_"): string => {
  const lines: Array<string> = []
  for (const snapshot of snapshots) {
    if (!snapshot.id.startsWith(prefix)) continue
    const series = labels(snapshot.attributes)
    switch (snapshot.type) {
      case "Counter":
        lines.push(`${snapshot.id}${series}: ${snapshot.state.count}`)
        break
      case "Gauge":
        lines.push(`${snapshot.id}${series}: ${snapshot.state.value}`)
        break
      case "Histogram":
        lines.push(`${snapshot.id}_count${series}: ${snapshot.state.count}`)
        lines.push(`${snapshot.id}_sum${series}: ${snapshot.state.sum}`)
    }
  }
  return lines.sort().join("\n")
}
