/**
 * Logs to stderr, as logfmt-like `key=value` text or one JSON object per
 * line, from a minimum level up. Log annotations become top-level fields in
 * both formats (`client=...` / `"client": ...`).
 *
 * @since 0.1.0
 */
import { Layer, Logger, type LogLevel, References } from "effect"
import type { LogFormat } from "../domain/Config.ts"

/** One JSON object per line: timestamp, level, message, then the annotations as fields. */
export const formatJson = Logger.map(
  Logger.formatStructured,
  ({ annotations, cause, level, message, timestamp }) =>
    JSON.stringify({ timestamp, level, message, ...annotations, ...(cause === undefined ? {} : { cause }) })
)

/** Replaces the default logger with one writing `format` to stderr from `level` up. */
export const layer = (format: LogFormat, level: LogLevel.LogLevel): Layer.Layer<never> =>
  Layer.mergeAll(
    Logger.layer([Logger.withConsoleError(format === "json" ? formatJson : Logger.formatLogFmt)]),
    Layer.succeed(References.MinimumLogLevel, level)
  )
