/**
 * The dashboard's sampler: once a second it reads the metric registry (the
 * same source `/metrics` renders) and the pools (through the same view as
 * `/backends`) into a ring of five minutes of samples. It adds nothing to
 * the data path: connections keep their counters as they always do, and
 * the sampler only reads them. The admin endpoint builds it; without
 * `--metrics-addr` it does not exist.
 *
 * @since 0.1.0
 */
import * as Clock from "effect/Clock"
import * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
import * as Layer from "effect/Layer"
import * as Metric from "effect/Metric"
import * as Schedule from "effect/Schedule"
import * as StatsDomain from "../domain/Stats.ts"
import type { Routes } from "../services/Routes.ts"
import type { Draining } from "../services/Shutdown.ts"
import { Stats } from "../services/Stats.ts"
import { backendsView, states } from "./BackendsView.ts"

/** Time between samples. */
export const interval = Duration.seconds(1)
/** How much history is kept. */
export const window = Duration.minutes(5)

/** Samples every `every` into a ring holding `span` of them, for as long as the layer's scope is open. */
export const make = Effect.fnUntraced(function*(every: Duration.Duration, span: Duration.Duration) {
  const context = yield* Effect.context<never>()
  const ring = new StatsDomain.Ring(Duration.toMillis(span) / Duration.toMillis(every))
  let cached: { readonly samples: number; readonly feed: StatsDomain.Feed } | undefined
  let taken = 0
  const sample = Effect.gen(function*() {
    const view = yield* backendsView
    const at = yield* Clock.currentTimeMillis
    ring.push(StatsDomain.readSample(Metric.snapshotUnsafe(context), states(view), at))
    taken++
  })
  // The first sample as the layer is built, so the feed is never empty. Spaced rather than fixed: after
  // a stall, no burst of samples a few milliseconds apart (rates over such short spans would be mostly
  // noise); each rate is over the time that really passed.
  yield* sample
  yield* sample.pipe(Effect.repeat(Schedule.spaced(every)), Effect.delay(every), Effect.forkScoped)
  return Stats.of({
    feed: Effect.sync(() => {
      if (cached === undefined || cached.samples !== taken) {
        cached = { samples: taken, feed: StatsDomain.feed(ring.samples(), Duration.toMillis(every)) }
      }
      return cached.feed
    })
  })
})

/** The sampler: a sample every second, five minutes kept. */
export const layer: Layer.Layer<Stats, never, Routes | Draining> = Layer.effect(Stats, make(interval, window))
