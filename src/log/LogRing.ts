/**
 * The log ring: lines passed from the thread that logs to the log thread
 * that writes them, through a `SharedArrayBuffer`, with no allocation, no
 * message and no system call per line. The writer (one thread) appends
 * records; the reader (one other thread) takes them in order. An access line
 * travels as its fields, not as text: formatting it is the reader's work.
 *
 * The writer wakes the reader only when it finds it asleep (once per batch),
 * and blocks only when the ring is full, as a blocking write to stderr would.
 *
 * @since 0.1.0
 */
import { type AccessEntry, endWords } from "../domain/AccessLine.ts"

/** The header's 32-bit slots, then the records from byte 16. */
const WRITE = 0
const READ = 1
/** 1 while the reader sleeps until the writer wakes it. */
const SLEEPING = 2
/** 1 once the writer asked the reader to write what is left and end. */
const STOP = 3
/** 1 once the reader ended: the writer writes no more. */
const ENDED = 4
const dataStart = 24

/** Record kinds. */
const WRAP = 0
const BYTES = 1
const ACCESS_TEXT = 2
const ACCESS_JSON = 3

/** The bytes a record may take at most: longer lines travel in several records. */
const maxRecord = 64 * 1024
/** The UTF-16 units of a line per record (3 bytes each at most in UTF-8). */
const lineChunk = Math.floor((maxRecord - 16) / 3)
/** A string field's length when it is absent. */
const absent = 0xffff

const pad8 = (n: number) => (n + 7) & ~7

/** A new ring of `bytes` bytes for records (at least 4 of the largest size; records start 8-aligned). */
export const make = (bytes = 1024 * 1024): SharedArrayBuffer =>
  new SharedArrayBuffer(pad8(Math.max(bytes, 4 * maxRecord)) + dataStart)

/** The writing end: one thread only. */
export class RingWriter {
  readonly #i32: Int32Array
  readonly #f64: Float64Array
  readonly #bytes: Buffer
  readonly #end: number
  #w: number
  constructor(ring: SharedArrayBuffer) {
    this.#i32 = new Int32Array(ring, 0, 5)
    this.#f64 = new Float64Array(ring)
    this.#bytes = Buffer.from(ring)
    this.#end = ring.byteLength
    this.#w = dataStart + Atomics.load(this.#i32, WRITE)
  }

  /** One line (without its newline), in as many records as it needs; false when the reader has ended. */
  line(text: string): boolean {
    let from = 0
    do {
      let to = Math.min(text.length, from + lineChunk)
      // A chunk does not end between the two halves of a surrogate pair.
      const last = text.charCodeAt(to - 1)
      if (to < text.length && last >= 0xd800 && last <= 0xdbff) to--
      const chunk = text.slice(from, to)
      const at = this.#reserve(pad8(16 + chunk.length * 3 + 1))
      if (at === -1) return false
      let used = this.#bytes.write(chunk, at + 16, "utf8")
      if (to === text.length) this.#bytes[at + 16 + used++] = 10
      this.#commit(at, BYTES, pad8(16 + used), used)
      from = to
    } while (from < text.length)
    return true
  }

  /** One access line, as its fields: the reader formats it (as JSON when `json`); false when the reader has ended. */
  access(entry: AccessEntry, timestamp: number, fiber: number, json: boolean): boolean {
    const { backend, backend_local, client } = entry
    const most = 48 + 6 + 3 * (client.length + (backend?.length ?? 0) + (backend_local?.length ?? 0))
    const at = this.#reserve(pad8(most))
    if (at === -1) return false
    const f = at >> 3
    const f64 = this.#f64
    f64[f + 1] = timestamp
    f64[f + 2] = fiber
    f64[f + 3] = entry.bytes_in
    f64[f + 4] = entry.bytes_out
    f64[f + 5] = entry.duration_ms
    let p = this.#text(client, at + 48)
    p = this.#text(backend, p)
    p = this.#text(backend_local, p)
    this.#bytes[at + 5] = endWords.indexOf(entry.end)
    this.#commit(at, json ? ACCESS_JSON : ACCESS_TEXT, pad8(p - at), 0)
    return true
  }

  /** Asks the reader to write what is left and end. */
  stop(): void {
    Atomics.store(this.#i32, STOP, 1)
    this.#wake()
    Atomics.notify(this.#i32, STOP)
  }

  #text(value: string | undefined, at: number): number {
    if (value === undefined) {
      this.#bytes.writeUInt16LE(absent, at)
      return at + 2
    }
    const length = this.#bytes.write(value, at + 2, "utf8")
    this.#bytes.writeUInt16LE(length, at)
    return at + 2 + length
  }

  /** Where a record of at most `size` bytes goes, -1 once the reader has ended; waits while the ring is full. */
  #reserve(size: number): number {
    const i32 = this.#i32
    for (;;) {
      if (Atomics.load(i32, ENDED) === 1) return -1
      const r = dataStart + Atomics.load(i32, READ)
      const w = this.#w
      // The tail always keeps room for a wrap record, and the writer never catches up with the reader.
      if (w >= r && this.#end - w > size) return w
      if (w >= r && r - dataStart > size) {
        this.#bytes.writeUInt32LE(this.#end - w, w)
        this.#bytes[w + 4] = WRAP
        this.#w = dataStart
        Atomics.store(i32, WRITE, 0)
        continue
      }
      if (w < r && r - w > size) return w
      // Full: hurry the reader, and wait for it to make room.
      this.#wake()
      Atomics.notify(i32, STOP)
      Atomics.wait(i32, READ, r - dataStart, 50)
    }
  }

  #commit(at: number, kind: number, size: number, length: number): void {
    this.#bytes.writeUInt32LE(size, at)
    this.#bytes[at + 4] = kind
    if (kind === BYTES) this.#bytes.writeUInt32LE(length, at + 8)
    this.#w = at + size
    Atomics.store(this.#i32, WRITE, this.#w - dataStart)
    if (Atomics.load(this.#i32, SLEEPING) === 1) this.#wake()
  }

  #wake(): void {
    Atomics.store(this.#i32, SLEEPING, 0)
    Atomics.notify(this.#i32, SLEEPING)
  }
}

/** What the reader does with each record, in order. */
export interface RingHandler {
  /** Bytes of one or more lines (a long line comes in several parts, its newline with the last). */
  readonly bytes: (bytes: Buffer) => void
  readonly access: (entry: AccessEntry, timestamp: number, fiber: number, json: boolean) => void
}

/** The reading end: one thread only, the writer's partner. */
export class RingReader {
  readonly #i32: Int32Array
  readonly #f64: Float64Array
  readonly #bytes: Buffer
  #r: number
  /** Where the next string field of the record being read is. */
  #at = 0
  constructor(ring: SharedArrayBuffer) {
    this.#i32 = new Int32Array(ring, 0, 5)
    this.#f64 = new Float64Array(ring)
    this.#bytes = Buffer.from(ring)
    this.#r = dataStart + Atomics.load(this.#i32, READ)
  }

  /** Tells the writer that nothing reads any more (it stops waiting for room). */
  end(): void {
    Atomics.store(this.#i32, ENDED, 1)
    Atomics.notify(this.#i32, READ)
  }

  /** Whether the writer asked the reader to end. */
  get stopped(): boolean {
    return Atomics.load(this.#i32, STOP) === 1
  }

  /** Hands every record written so far to `handler`, then frees their room. */
  drain(handler: RingHandler): void {
    const bytes = this.#bytes
    let r = this.#r
    while (r !== dataStart + Atomics.load(this.#i32, WRITE)) {
      const size = bytes.readUInt32LE(r)
      const kind = bytes[r + 4]
      if (kind === BYTES) handler.bytes(bytes.subarray(r + 16, r + 16 + bytes.readUInt32LE(r + 8)))
      else if (kind === ACCESS_TEXT || kind === ACCESS_JSON) {
        const f = r >> 3
        this.#at = r + 48
        const client = this.#text() ?? ""
        const backend = this.#text()
        const backend_local = this.#text()
        handler.access({
          client,
          backend,
          backend_local,
          bytes_in: this.#f64[f + 3]!,
          bytes_out: this.#f64[f + 4]!,
          duration_ms: this.#f64[f + 5]!,
          end: endWords[bytes[r + 5]!] ?? "done"
        }, this.#f64[f + 1]!, this.#f64[f + 2]!, kind === ACCESS_JSON)
      }
      r = kind === WRAP ? dataStart : r + size
    }
    this.#r = r
    Atomics.store(this.#i32, READ, r - dataStart)
    Atomics.notify(this.#i32, READ)
  }

  /**
   * Waits until there is something to read (or the writer stops), then
   * `windowMs` more for the rest of a batch to come.
   */
  wait(windowMs: number): void {
    const i32 = this.#i32
    if (this.#r === dataStart + Atomics.load(i32, WRITE) && !this.stopped) {
      Atomics.store(i32, SLEEPING, 1)
      // The writer looks at SLEEPING after publishing a record: either it sees 1, or this sees its record.
      if (this.#r === dataStart + Atomics.load(i32, WRITE) && !this.stopped) Atomics.wait(i32, SLEEPING, 1)
      Atomics.store(i32, SLEEPING, 0)
    }
    if (!this.stopped) Atomics.wait(i32, STOP, 0, windowMs)
  }

  /** The string field at `#at` (undefined when absent); `#at` moves past it. */
  #text(): string | undefined {
    const at = this.#at
    const length = this.#bytes.readUInt16LE(at)
    if (length === absent) {
      this.#at = at + 2
      return undefined
    }
    this.#at = at + 2 + length
    return this.#bytes.toString("utf8", at + 2, at + 2 + length)
  }
}
