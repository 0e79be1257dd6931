/**
 * The log thread: it takes the lines of a single-threaded proxy from the log
 * ring, formats the access lines, and writes everything to its file
 * descriptor (stderr) in batches, at most `windowMs` after the first line of
 * a batch. It ends once the ring's writer stops it and everything is written.
 *
 * It does the formatting and the writing on a core of its own, so that
 * `--log-level info` costs the thread serving connections little more than
 * copying each line's fields.
 *
 * @since 0.1.0
 */
import * as Fs from "node:fs"
import { workerData } from "node:worker_threads"
import * as AccessLine from "../domain/AccessLine.ts"
import { RingReader } from "./LogRing.ts"

/** What the log thread starts from. */
export interface LogThreadData {
  readonly ring: SharedArrayBuffer
  /** Where the lines go: 2 for stderr. */
  readonly fd: number
  readonly windowMs: number
}

const outBytes = 64 * 1024

/** Writes the whole of `bytes`, waiting while a non-blocking descriptor is full; output that cannot be written is dropped. */
const writeAll = (fd: number, bytes: Uint8Array) => {
  const pause = new Int32Array(new SharedArrayBuffer(4))
  let from = 0
  while (from < bytes.length) {
    try {
      from += Fs.writeSync(fd, bytes, from, bytes.length - from)
    } catch (error) {
      if (error instanceof Error && "code" in error && error.code === "EAGAIN") Atomics.wait(pause, 0, 0, 5)
      else return
    }
  }
}

const run = ({ fd, ring, windowMs }: LogThreadData) => {
  const reader = new RingReader(ring)
  const out = Buffer.allocUnsafeSlow(outBytes)
  let used = 0
  const flush = () => {
    if (used > 0) writeAll(fd, out.subarray(0, used))
    used = 0
  }
  const append = (bytes: Uint8Array) => {
    if (used + bytes.length > outBytes) flush()
    if (bytes.length > outBytes) writeAll(fd, bytes)
    else {
      out.set(bytes, used)
      used += bytes.length
    }
  }
  const format = AccessLine.formatter()
  const handler = {
    bytes: append,
    access: (entry: AccessLine.AccessEntry, timestamp: number, fiber: number, json: boolean) => {
      const line = format(entry, timestamp, fiber, json)
      if (used + line.length * 3 + 1 > outBytes) flush()
      used += out.write(line, used, "utf8")
      out[used++] = 10
    }
  }
  try {
    for (;;) {
      reader.wait(windowMs)
      const stopped = reader.stopped
      reader.drain(handler)
      flush()
      // The writer writes nothing after its stop: once seen before a drain, everything is written.
      if (stopped) return
    }
  } finally {
    reader.end()
  }
}

run(workerData)
