/**
 * Logs to stderr, as logfmt-like `key=value` text or one JSON object per
 * line, from the level the settings give; both follow reloads. Lines are
 * written in batches (every 25 ms at most), never one blocking write each,
 * and the access log line (`connection closed`) is formatted directly into
 * the same batches. Log annotations become top-level fields in both formats
 * (`client=...` / `"client": ...`). A worker's lines end with its number
 * (`worker=2` / `"worker":2`), and each reaches stderr whole: a worker's
 * stderr is carried by the main thread in the chunks written here, whole
 * lines each.
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
import * as SubscriptionRef from "effect/SubscriptionRef"
import * as AccessLine from "../domain/AccessLine.ts"
import type { LogLevelName } from "../domain/Config.ts"
import { AccessLog } from "../services/AccessLog.ts"
import { Settings } from "../services/Settings.ts"

/** A value as logfmt shows it: bare when it can be, quoted otherwise. */
const logfmtValue = (value: unknown): string =>
  AccessLine.logfmtString(
    typeof value === "string" ? value : typeof value === "object" ? JSON.stringify(value) ?? "" : String(value)
  )

/**
 * logfmt-like `key=value` text: timestamp, level, fiber, message, then the
 * annotations as fields.
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

/** The size of a batch's buffer; a batch that would overflow it is written first. */
const batchBytes = 64 * 1024

/**
 * Lines gathered and written to stderr together, at most `windowMs` after
 * the first of a batch. Each line is encoded into the batch's buffer as it
 * comes, so a batch holds no strings for the garbage collector to copy, and
 * writing it needs no concatenation.
 */
const batchedStderr = (windowMs: number) =>
  Effect.acquireRelease(
    Effect.sync(() => {
      let buffer = Buffer.allocUnsafeSlow(batchBytes)
      let used = 0
      let timer: ReturnType<typeof setTimeout> | undefined
      const flush = () => {
        if (timer !== undefined) clearTimeout(timer)
        timer = undefined
        if (used === 0) return
        // stderr may keep the bytes until they are written: the next batch gets a buffer of its own.
        const batch = buffer.subarray(0, used)
        buffer = Buffer.allocUnsafeSlow(batchBytes)
        used = 0
        process.stderr.write(batch)
      }
      return {
        flush,
        write: (line: string) => {
          // A UTF-16 unit takes at most 3 bytes in UTF-8; the newline one more.
          const most = line.length * 3 + 1
          if (used + most > batchBytes) flush()
          if (most > batchBytes) process.stderr.write(`${line}\n`)
          else {
            used += buffer.write(line, used, "utf8")
            buffer[used++] = 10
          }
          timer ??= setTimeout(flush, windowMs).unref()
        }
      }
    }),
    (writer) => Effect.sync(writer.flush)
  )

/**
 * Replaces the default logger with one writing to stderr in the format and
 * from the level of the settings, and provides the access log writing into
 * the same batches; `worker` is the number of the worker thread it runs in.
 */
export const layerFor = (worker: number | undefined): Layer.Layer<never, never, Settings> => Layer.unwrap(Effect.gen(function*() {
  const settings = yield* Settings
  let { logFormat, logLevel } = SubscriptionRef.getUnsafe(settings)
  yield* SubscriptionRef.changes(settings).pipe(
    Stream.runForEach((config) =>
      Effect.sync(() => {
        logFormat = config.logFormat
        logLevel = config.logLevel
      })
    ),
    Effect.forkScoped
  )
  const batches = yield* batchedStderr(25)
  const writer = worker === undefined ? batches : {
    write: (line: string) =>
      batches.write(logFormat === "json" ? `${line.slice(0, -1)},"worker":${worker}}` : `${line} worker=${worker}`)
  }
  const logger = Logger.make<unknown, void>((options) => {
    if (!LogLevel.isGreaterThanOrEqualTo(options.logLevel, levels[logLevel])) return
    writer.write((logFormat === "json" ? formatJson : formatText).log(options))
  })
  // Connections that close together share a millisecond: its timestamp is formatted once.
  let stampedAt = 0
  let stamp = ""
  const accessLog = {
    write: (entry: AccessLine.AccessEntry) =>
      Effect.withFiber<void>((fiber) => {
        const now = Date.now()
        if (now !== stampedAt) {
          stampedAt = now
          stamp = new Date(now).toISOString()
        }
        const timestamp = stamp
        writer.write(logFormat === "json" ? AccessLine.json(entry, timestamp) : AccessLine.text(entry, timestamp, fiber.id))
        return Effect.void
      })
  }
  // Effect's own minimum lets everything through; this logger filters by the level in force.
  return Layer.mergeAll(
    Logger.layer([logger]),
    Layer.succeed(References.MinimumLogLevel, "All"),
    Layer.succeed(AccessLog, accessLog)
  )
}))

/** The logger of a single process, or of the control part of workers. */
export const layer: Layer.Layer<never, never, Settings> = layerFor(undefined)
