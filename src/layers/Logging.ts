/**
 * Logs to stderr, as logfmt-like `key=value` text or one JSON object per
 * line, from a minimum level up.
 *
 * @since 0.1.0
 */
import { Layer, Logger, type LogLevel, References } from "effect"
import type { LogFormat } from "../domain/Config.ts"

/** Replaces the default logger with one writing `format` to stderr from `level` up. */
export const layer = (format: LogFormat, level: LogLevel.LogLevel): Layer.Layer<never> =>
  Layer.mergeAll(
    Logger.layer([Logger.withConsoleError(format === "json" ? Logger.formatJson : Logger.formatLogFmt)]),
    Layer.succeed(References.MinimumLogLevel, level)
  )
