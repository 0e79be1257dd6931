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
import type { LogOutput, LogWriter } from "../log/LogWriter.ts"
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

/** Lines formatted in this thread, into batches written to stderr from it. */
const inThread = (write: (line: string) => void): LogOutput => {
  const format = AccessLine.formatter()
  return {
    line: write,
    access: (entry, timestamp, fiber, json) => write(format(entry, timestamp, fiber, json))
  }
}

/** The log thread's side in this thread, loaded the first time a level that logs every connection is in force. */
const loadLogWriter = Effect.promise((): Promise<typeof import("../log/LogWriter.ts")> => import("../log/LogWriter.ts"))

/** Whether lines at `level` come in with every connection. */
const everyConnection = (level: LogLevelName) => level === "info" || level === "debug"

/**
 * The logger and the access log over `Settings`. `worker` is the number of
 * the worker thread it runs in; `threaded` lets it hand the formatting and
 * writing of its lines to a log thread once a level that logs every
 * connection is in force (`fd` is where that thread writes).
 */
const make = (options: {
  readonly worker: number | undefined
  readonly threaded: boolean
  readonly fd: number
  readonly threadProgram?: URL
}): Layer.Layer<never, never, Settings> =>
  Layer.unwrap(Effect.gen(function*() {
    const settings = yield* Settings
    let { logFormat, logLevel } = SubscriptionRef.getUnsafe(settings)
    const batches = yield* batchedStderr(windowMs)
    const { worker } = options
    const here = inThread(
      worker === undefined
        ? batches.write
        : (line) => batches.write(logFormat === "json" ? `${line.slice(0, -1)},"worker":${worker}}` : `${line} worker=${worker}`)
    )
    let output = here
    const logger = Logger.make<unknown, void>((options) => {
      if (!LogLevel.isGreaterThanOrEqualTo(options.logLevel, levels[logLevel])) return
      output.line((logFormat === "json" ? formatJson : formatText).log(options))
    })
    /** A log thread that ended early says so, once, through this thread (where its lines now go). */
    const threadFailed = (reason: string) => {
      output = here
      Effect.runFork(
        Effect.logWarning(`the log thread failed (${reason}): lines are written from the serving thread from now on`).pipe(
          Effect.provideService(Logger.CurrentLoggers, new Set([logger]))
        )
      )
    }
    let thread: LogWriter | undefined
    let starting = false
    /** From the first level that logs every connection on, a log thread writes the lines. */
    const follow = Effect.suspend(() => {
      if (!options.threaded || starting || !everyConnection(logLevel)) return Effect.void
      starting = true
      return Effect.map(loadLogWriter, ({ start }) => {
        batches.flush()
        thread = start({
          fd: options.fd,
          windowMs,
          fallback: here,
          onFailure: threadFailed,
          ...(options.threadProgram === undefined ? {} : { program: options.threadProgram })
        })
        output = thread.output
      })
    })
    yield* Effect.addFinalizer(() => thread?.stop ?? Effect.void)
    yield* follow
    yield* SubscriptionRef.changes(settings).pipe(
      Stream.runForEach((config) =>
        Effect.suspend(() => {
          logFormat = config.logFormat
          logLevel = config.logLevel
          return follow
        })
      ),
      Effect.forkScoped
    )
    const accessLog = {
      write: (entry: AccessLine.AccessEntry) =>
        Effect.withFiber<void>((fiber) => {
          output.access(entry, Date.now(), fiber.id, logFormat === "json")
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

/** How long a batch gathers lines before it is written. */
const windowMs = 25

/**
 * The logger of a worker thread (`worker` is its number): its lines are
 * formatted and batched in the worker, and reach stderr through the main
 * thread.
 */
export const layerFor = (worker: number): Layer.Layer<never, never, Settings> => make({ worker, threaded: false, fd: 2 })

/**
 * The logger of the control part of workers: its lines are written from
 * the main thread, which also carries the workers' lines to stderr.
 */
export const layerControl: Layer.Layer<never, never, Settings> = make({ worker: undefined, threaded: false, fd: 2 })

/**
 * The logger of a single-threaded proxy. At `info` and `debug`, where every
 * connection writes a line, a log thread formats and writes the lines, and
 * the thread serving connections only hands it each line's fields; `fd` is
 * where that thread writes (stderr by default). `threadProgram` replaces the
 * log thread's module (a test gives one that fails).
 */
export const layerThreaded = (fd = 2, threadProgram?: URL): Layer.Layer<never, never, Settings> =>
  make({ worker: undefined, threaded: true, fd, ...(threadProgram === undefined ? {} : { threadProgram }) })

/** The logger of a single-threaded proxy, writing to stderr. */
export const layer: Layer.Layer<never, never, Settings> = layerThreaded()
