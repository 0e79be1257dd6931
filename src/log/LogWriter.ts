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

/**
 * A log thread writing to `fd`, fed through a log ring. Should the thread
 * end before it is stopped, what it left in the ring and every later line
 * go to `fallback`.
 */
export const start = (fd: number, windowMs: number, fallback: LogOutput): LogWriter => {
  const ring = LogRing.make()
  const writer = new LogRing.RingWriter(ring)
  const worker = new Worker(threadEntry, { workerData: { ring, fd, windowMs } satisfies LogThreadData, stdout: true, stderr: true })
  worker.unref()
  let live = true
  let stopping = false
  const exited = new Promise<void>((resolve) => worker.once("exit", () => resolve()))
  // A thread that could not start, or failed, hands its lines back; the failure itself is not a log line to lose.
  worker.on("error", () => {})
  void exited.then(() => {
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
