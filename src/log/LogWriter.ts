/**
 * The log thread's side in the thread that logs: it starts the thread, hands
 * it each line through the log ring, and at the end has it write what is
 * left. Loaded only once a level that logs every connection is in force.
 *
 * @since 0.1.0
 */
import { Worker } from "node:worker_threads"
import * as Effect from "effect/Effect"
import type { AccessEntry } from "../domain/AccessLine.ts"
import * as LogRing from "./LogRing.ts"
import type { LogThreadData } from "./LogThread.ts"

/** Where a logger's lines go: formatted (any line) or as fields (an access line). */
export interface LogOutput {
  readonly line: (text: string) => void
  readonly access: (entry: AccessEntry, timestamp: number, fiber: number, json: boolean) => void
}

/** A started log thread: where lines go now, and how to end it. */
export interface LogWriter {
  readonly output: LogOutput
  /** Has the thread write what is left, and waits for it to end. */
  readonly stop: Effect.Effect<void>
}

/** The log thread's module (compiled, or run from source). */
const threadEntry = new URL(import.meta.url.endsWith(".ts") ? "./LogThread.ts" : "./LogThread.js", import.meta.url)

/** How long the last lines may take to be written at shutdown before the log thread is stopped anyway. */
const lastWriteTimeout = "5 seconds"

/** How a log thread is started: where it writes, how it batches, and where lines go should it fail. */
export interface LogWriterOptions {
  /** Where the thread writes: 2 for stderr. */
  readonly fd: number
  readonly windowMs: number
  /** Where what the thread left in the ring, and every later line, go should it end before it is stopped. */
  readonly fallback: LogOutput
  /** Told once, after `fallback` has the lines the thread left, why it ended early. */
  readonly onFailure: (reason: string) => void
  /** The thread's program: the log thread's module unless given (a test gives one that fails). */
  readonly program?: URL
}

/** A log thread fed through a log ring. */
export const start = (options: LogWriterOptions): LogWriter => {
  const { fallback, fd, windowMs } = options
  const ring = LogRing.make()
  const writer = new LogRing.RingWriter(ring)
  const worker = new Worker(options.program ?? threadEntry, {
    workerData: { ring, fd, windowMs } satisfies LogThreadData,
    stdout: true,
    stderr: true
  })
  worker.unref()
  let live = true
  let stopping = false
  let failure: string | undefined
  const exited = new Promise<number>((resolve) => worker.once("exit", resolve))
  // A thread that could not start, or failed, hands its lines back and says why once they are written.
  worker.on("error", (error) => {
    failure ??= error.message
  })
  void exited.then((code) => {
    live = false
    if (stopping) return
    // A long line comes in parts: only its last ends with the newline.
    let partial = ""
    new LogRing.RingReader(ring).drain({
      bytes: (bytes) => {
        const text = partial + bytes.toString("utf8")
        partial = text.endsWith("\n") ? "" : text
        if (partial === "") fallback.line(text.slice(0, -1))
      },
      access: fallback.access
    })
    options.onFailure(failure ?? `it exited with code ${code}`)
  })
  const output: LogOutput = {
    line: (text) => {
      if (!(live && writer.line(text))) fallback.line(text)
    },
    access: (entry, timestamp, fiber, json) => {
      if (!(live && writer.access(entry, timestamp, fiber, json))) fallback.access(entry, timestamp, fiber, json)
    }
  }
  /** Has the thread write what is left, and waits for it to end. */
  const stop = Effect.suspend(() => {
    stopping = true
    // Until it ends, the thread keeps the process alive: the last lines are written before it exits.
    worker.ref()
    writer.stop()
    return Effect.promise(() => exited)
  }).pipe(
    Effect.timeoutOrElse({ duration: lastWriteTimeout, orElse: () => Effect.promise(() => worker.terminate()) }),
    Effect.asVoid
  )
  return { output, stop }
}
