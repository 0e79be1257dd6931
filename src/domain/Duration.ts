/**
 * Duration text as the flags and the config file accept it: Go-style units
 * (`3s`, `500ms`, `1m30s`, `2h`, `ns`, `us`) and Effect's own (`3 seconds`,
 * `500 millis`).
 *
 * @since 0.1.0
 */
import * as Duration from "effect/Duration"
import * as Option from "effect/Option"

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
