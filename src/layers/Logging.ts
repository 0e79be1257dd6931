/**
 * Logs to stderr, as logfmt-like `key=value` text or one JSON object per
 * line, from the level the settings give; both follow reloads. Lines are
 * written in batches (every 25 ms at most), never one blocking write each. Log
 * annotations become top-level fields in both formats (`client=...` /
 * `"client": ...`).
 *
 * @since 0.1.0
 */
import * as Cause from "effect/Cause"
import * as Effect from "effect/Effect"
import * as Layer from "effect/Layer"
import * as Logger from "effect/Logger"
import * as LogLevel from "effect/LogLevel"
import * as References from "effect/References"
import * as Stream from "effect/Stream"
import type { LogLevelName } from "../domain/Config.ts"
import { Settings } from "../services/Settings.ts"

const bare = /^[^\s"=\\]*$/

/** A value as logfmt shows it: bare when it can be, quoted otherwise. */
const logfmtValue = (value: unknown): string => {
  const text = typeof value === "string" ? value : typeof value === "object" ? JSON.stringify(value) ?? "" : String(value)
  return bare.test(text) ? text : JSON.stringify(text)
}

/**
 * logfmt-like `key=value` text: timestamp, level, fiber, message, then the
 * annotations as fields. Lean on purpose: one line is written per connection.
 */
export const formatText = Logger.make<unknown, string>(({ cause, date, fiber, logLevel, message }) => {
  let out = `timestamp=${date.toISOString()} level=${logLevel.toUpperCase()} fiber=#${fiber.id}`
  for (const part of Array.isArray(message) ? message : [message]) out += ` message=${logfmtValue(part)}`
  for (const [key, value] of Object.entries(fiber.getRef(References.CurrentLogAnnotations))) {
    out += ` ${key}=${logfmtValue(value)}`
  }
  if (cause.reasons.length > 0) out += ` cause=${logfmtValue(Cause.pretty(cause))}`
  return out
})

/** One JSON object per line: timestamp, level, message, then the annotations as fields. */
export const formatJson = Logger.map(
  Logger.formatStructured,
  ({ annotations, cause, level, message, timestamp }) =>
    JSON.stringify({ timestamp, level, message, ...annotations, ...(cause === undefined ? {} : { cause }) })
)

const levels: Record<LogLevelName, LogLevel.LogLevel> = { debug: "Debug", info: "Info", warn: "Warn", error: "Error" }

/** Replaces the default logger with one writing to stderr in the format and from the level of the settings. */
export const layer: Layer.Layer<never, never, Settings> = Layer.unwrap(Effect.gen(function*() {
  const settings = yield* Settings
  let { logFormat, logLevel } = yield* settings.current
  yield* (yield* settings.subscribe).pipe(
    Stream.runForEach((config) =>
      Effect.sync(() => {
        logFormat = config.logFormat
        logLevel = config.logLevel
      })
    ),
    Effect.forkScoped
  )
  const formatted = Logger.make<unknown, string | undefined>((options) =>
    LogLevel.isGreaterThanOrEqualTo(options.logLevel, levels[logLevel])
      ? (logFormat === "json" ? formatJson : formatText).log(options)
      : undefined
  )
  // Lines are written in batches, one write per window, so that a busy proxy does not
  // make a blocking write to stderr for every connection; what is left is flushed at the end.
  const logger = yield* Logger.batched(formatted, {
    window: "25 millis",
    flush: (lines) =>
      Effect.sync(() => {
        const text = lines.filter((line) => line !== undefined).join("\n")
        if (text !== "") process.stderr.write(`${text}\n`)
      })
  })
  // Effect's own minimum lets everything through; this logger filters by the level in force.
  return Layer.mergeAll(Logger.layer([logger]), Layer.succeed(References.MinimumLogLevel, "All"))
}))
