/**
 * Duration text as the flags and the config file accept it: Go-style units
 * (`3s`, `500ms`, `1m30s`, `2h`, `ns`, `us`) and Effect's own (`3 seconds`,
 * `500 millis`).
 *
 * @since 0.1.0
 */
import * as Duration from "effect/Duration"
import * as Option from "effect/Option"
import * as Result from "effect/Result"

const goUnits: Record<string, number> = { ns: 1e-6, us: 1e-3, "µs": 1e-3, ms: 1, s: 1e3, m: 6e4, h: 36e5 }
const effectUnits: Record<string, number> = {
  nano: 1e-6,
  micro: 1e-3,
  milli: 1,
  second: 1e3,
  minute: 6e4,
  hour: 36e5,
  day: 864e5,
  week: 6048e5
}
const goStyle = /^(?:\d+(?:\.\d+)?(?:ns|us|µs|ms|s|m|h))+$/
const goPart = /(\d+(?:\.\d+)?)(ns|us|µs|ms|s|m|h)/g
const effectStyle = /^(\d+(?:\.\d+)?) (nano|micro|milli|second|minute|hour|day|week)s?$/

/** What a duration looks like, for error messages. */
export const expected = `a duration such as 3s, 500ms, 1m30s or "3 seconds"`

/** Parses a duration, or returns `None` for text that is not one. */
export const parse = (text: string): Option.Option<Duration.Duration> => {
  const trimmed = text.trim()
  if (goStyle.test(trimmed)) {
    let millis = 0
    for (const [, amount, unit] of trimmed.matchAll(goPart)) millis += Number(amount) * goUnits[unit!]!
    return Option.some(Duration.millis(millis))
  }
  const effect = effectStyle.exec(trimmed)
  return effect === null ? Option.none() : Option.some(Duration.millis(Number(effect[1]) * effectUnits[effect[2]!]!))
}

/** The durations a setting accepts: timers outside them either fire at once or never as meant. */
export interface Range {
  readonly min: Duration.Duration
  readonly max: Duration.Duration
  /** The range in words, for error messages. */
  readonly text: string
}

/**
 * Timeouts and the drain time: from 1ms to 24 days (Node's timers cannot wait
 * longer than about 24.8 days, and clamp anything longer to 1ms).
 */
export const timeoutRange: Range = { min: Duration.millis(1), max: Duration.days(24), text: "between 1ms and 24 days" }

/** Intervals of repeated work (health checks, DNS refresh, metric export): from 100ms to 24 days. */
export const intervalRange: Range = { min: Duration.millis(100), max: Duration.days(24), text: "between 100ms and 24 days" }

/** What a duration in `range` looks like, for error messages. */
export const expectedWithin = (range: Range): string => `a duration ${range.text}, such as 3s, 500ms, 1m30s or "3 seconds"`

/** Parses a duration that must lie in `range`; the failure says what was expected. */
export const parseWithin = (text: string, range: Range): Result.Result<Duration.Duration, string> =>
  Option.match(parse(text), {
    onNone: () => Result.fail(expectedWithin(range)),
    onSome: (duration) =>
      Duration.isFinite(duration) && Duration.isGreaterThanOrEqualTo(duration, range.min) &&
        Duration.isLessThanOrEqualTo(duration, range.max)
        ? Result.succeed(duration)
        : Result.fail(expectedWithin(range))
  })
