/**
 * Per-client-IP limits: `--max-connections-per-ip N` (connections open at
 * once from one address) and `--connection-rate-per-ip N/DURATION` (a token
 * bucket of N tokens refilled over DURATION, one token per new connection).
 *
 * The state lives in a fixed-size hash table over typed arrays on one
 * `ArrayBuffer`, so its memory never grows however many addresses connect,
 * and so that it can live in a `SharedArrayBuffer` shared by worker threads:
 * then every call holds a lock in the buffer (an `Atomics` spin lock over a
 * few microseconds of work), so the whole proxy counts as one. An entry is
 * keyed by the address as four uint32 words, IPv4 as `::ffff:a.b.c.d`, so an
 * IPv4-mapped client counts as its IPv4 address; the hash is seeded at
 * random, so that clients cannot pick addresses that collide. A bucket is kept as the
 * tokens spent and the time of the last spending; the refill is worked out
 * when the address next connects, so no timer runs.
 *
 * Open connections are counted whether or not a limit is set, so a reload
 * that sets one sees the connections already open. An entry is idle when its
 * address has no open connection and a full bucket: it then holds nothing
 * worth keeping and is reclaimed lazily: at the last release when no rate
 * is set, when a new address's probe passes it, or when the table is full.
 *
 * When the table is full (`maxEntries` addresses), a new address takes the
 * place of one without open connections, found by a clock hand sweeping the
 * table: it takes the first entry it reaches that is idle, or that is still
 * refilling its bucket but was not seen since the hand last passed (CLOCK, an
 * approximation of least recently seen); such an address starts afresh when
 * it comes back. If every entry has open connections, the new address is
 * refused as `per_ip_limit` (admitted uncounted when no limit is set). With the default
 * capacity of 65536, far above `--max-connections`' default of 10000, that
 * takes more than 65536 distinct clients holding connections at once.
 *
 * @since 0.1.0
 */
import * as Cidr from "./Cidr.ts"

/** The limits; `undefined` turns one off. */
export interface Limits {
  /** Connections open at once from one address. */
  readonly maxPerIp: number | undefined
  /** New connections from one address: `count` per `perMs` milliseconds, in bursts of up to `count`. */
  readonly rate: { readonly count: number; readonly perMs: number } | undefined
}

/** The limits, and the table's capacity and memory. */
export interface Options extends Limits {
  /** How many addresses the table holds at most (default 65536). */
  readonly maxEntries?: number
  /** The table's memory, `byteLength(maxEntries, threads)` bytes; a new zeroed buffer when not given. */
  readonly buffer?: ArrayBuffer | SharedArrayBuffer
  /**
   * How many threads share the table (0: it is not shared); each entry then
   * also counts each thread's open connections, so that what a thread that
   * died had open can be released (`releaseThread`).
   */
  readonly threads?: number
  /** Which of them counts through this handle, 1 to `threads`. */
  readonly thread?: number
}

/** Whether a new connection may go ahead, and if not, which limit refused it. */
export type Verdict = "ok" | "per_ip_limit" | "rate_limit"

/** The per-IP limits of one listener. */
export interface ClientLimits {
  /**
   * Decides on a new connection from `ip` (as Node reports it) at `nowMs`;
   * on "ok" the address's open count goes up by one and a token is taken.
   * Text that is no IP address is admitted uncounted.
   */
  readonly admit: (ip: string, nowMs: number) => Verdict
  /** Counts a connection admitted with "ok" as closed. */
  readonly release: (ip: string) => void
  /** Changes the limits for new connections (a reload); open counts and buckets are kept. */
  readonly update: (limits: Limits) => void
  /** How many addresses the table holds now (at most `maxEntries`). */
  readonly tracked: () => number
  /** Releases every connection thread `thread` had open (it is gone); a table that is not shared has none. */
  readonly releaseThread: (thread: number) => void
}

/** The default capacity. */
export const defaultMaxEntries = 65536

// The layout. Int32 header: magic, hash seed, entry count, entries with open
// connections, clock hand. Then per slot, Int32: flags, the four key words,
// open count; and after them, per slot, Float64: tokens spent, and when.
const magic = 0x434c4d31
const headerInts = 8
const seedAt = 1
const countAt = 2
const activeAt = 3
const handAt = 4
const lockAt = 5
/** Ints per slot before the per-thread counts. */
const fixedInts = 6
const wordsField = 1
const openField = 5
const used = 1
const referenced = 2
const fieldFloats = 2
const spentField = 0
const spentWhenField = 1
/** Tokens' rounding slack: a bucket refilled over a period in many small steps still counts as full. */
const slack = 1e-9

/** Slots in the table: a power of two at least twice the capacity, so probe chains stay short. */
const slotsFor = (maxEntries: number): number => 2 ** Math.ceil(Math.log2(2 * maxEntries))

/** The bytes a table of `maxEntries` addresses takes, for a `buffer` to share. */
export const byteLength = (maxEntries: number = defaultMaxEntries, threads = 0): number =>
  4 * headerInts + (4 * (fixedInts + threads) + 8 * fieldFloats) * slotsFor(maxEntries)

/** murmur3's 32-bit mix of the four words, keyed by the table's random seed. */
const hashWords = (words: Cidr.Words, seed: number): number => {
  let hash = seed
  for (const word of words) {
    let k = Math.imul(word, 0xcc9e2d51)
    k = Math.imul((k << 15) | (k >>> 17), 0x1b873593)
    hash ^= k
    hash = Math.imul((hash << 13) | (hash >>> 19), 5) + 0xe6546b64
  }
  hash ^= hash >>> 16
  hash = Math.imul(hash, 0x85ebca6b)
  hash ^= hash >>> 13
  hash = Math.imul(hash, 0xc2b2ae35)
  return (hash ^ (hash >>> 16)) >>> 0
}

/**
 * A table of per-IP state over `options.buffer` (or a new buffer). A buffer
 * already holding a table is used as it is. Throws a `RangeError` for a
 * capacity that is not a positive integer or a buffer of the wrong size.
 */
export const make = (options: Options): ClientLimits => {
  const maxEntries = options.maxEntries ?? defaultMaxEntries
  if (!Number.isInteger(maxEntries) || maxEntries < 1) {
    throw new RangeError(`maxEntries must be a positive integer, got ${maxEntries}`)
  }
  const slots = slotsFor(maxEntries)
  const mask = slots - 1
  const threads = options.threads ?? 0
  const fieldInts = fixedInts + threads
  /** Where this thread's count is in a slot (past the end when the table is not shared). */
  const threadField = fixedInts + (options.thread ?? 1) - 1
  const buffer = options.buffer ?? new ArrayBuffer(byteLength(maxEntries, threads))
  if (buffer.byteLength !== byteLength(maxEntries, threads)) {
    throw new RangeError(`the buffer must be ${byteLength(maxEntries, threads)} bytes, got ${buffer.byteLength}`)
  }
  const ints = new Int32Array(buffer, 0, headerInts + fieldInts * slots)
  const floats = new Float64Array(buffer, 4 * (headerInts + fieldInts * slots), fieldFloats * slots)
  if (ints[0] !== magic) {
    ints.fill(0)
    floats.fill(0)
    ints[seedAt] = crypto.getRandomValues(new Int32Array(1))[0] ?? 0
    ints[0] = magic
  }
  let limits: Limits = { maxPerIp: options.maxPerIp, rate: options.rate }
  /** Runs `f` holding the buffer's lock when other threads share it. */
  const locked: <A>(f: () => A) => A = buffer instanceof SharedArrayBuffer
    ? (f) => {
      while (Atomics.compareExchange(ints, lockAt, 0, 1) !== 0) {
        // Another thread holds it for a few microseconds.
      }
      try {
        return f()
      } finally {
        Atomics.store(ints, lockAt, 0)
      }
    }
    : (f) => f()

  const int = (i: number): number => ints[i] ?? 0
  const base = (slot: number): number => headerInts + fieldInts * slot
  const isUsed = (slot: number): boolean => (int(base(slot)) & used) !== 0
  const open = (slot: number): number => int(base(slot) + openField)
  /** The tokens an address has spent, as of `nowMs`: 0 when its bucket is full. */
  const spent = (slot: number, nowMs: number): number => {
    const { rate } = limits
    const tokens = floats[fieldFloats * slot + spentField] ?? 0
    if (rate === undefined) return tokens
    const elapsed = Math.max(0, nowMs - (floats[fieldFloats * slot + spentWhenField] ?? 0))
    return Math.max(0, tokens - elapsed * rate.count / rate.perMs)
  }
  const home = (words: Cidr.Words): number => hashWords(words, int(seedAt)) & mask
  const homeOf = (slot: number): number => {
    const at = base(slot) + wordsField
    return home([int(at) >>> 0, int(at + 1) >>> 0, int(at + 2) >>> 0, int(at + 3) >>> 0])
  }
  const holds = (slot: number, words: Cidr.Words): boolean => {
    const at = base(slot) + wordsField
    return int(at) === (words[0] | 0) && int(at + 1) === (words[1] | 0) && int(at + 2) === (words[2] | 0) &&
      int(at + 3) === (words[3] | 0)
  }
  const isIdle = (slot: number, nowMs: number): boolean =>
    open(slot) === 0 && (limits.rate === undefined || spent(slot, nowMs) <= slack)

  /** The slot holding `words`, or -1; `emptySlot` and `idleSlot` tell where on its chain a new entry could go. */
  let emptySlot = -1
  let idleSlot = -1
  const find = (words: Cidr.Words, nowMs: number): number => {
    idleSlot = -1
    for (let slot = home(words);; slot = (slot + 1) & mask) {
      if (!isUsed(slot)) {
        emptySlot = slot
        return -1
      }
      if (holds(slot, words)) return slot
      if (idleSlot < 0 && isIdle(slot, nowMs)) idleSlot = slot
    }
  }

  /** Empties a slot, shifting later entries of the chain back so that every chain stays unbroken. */
  const remove = (slot: number): void => {
    let hole = slot
    for (let next = (slot + 1) & mask; isUsed(next); next = (next + 1) & mask) {
      const start = homeOf(next)
      // The entry at `next` may fill the hole unless its chain starts after the hole.
      const startsAfterHole = hole <= next ? start > hole && start <= next : start > hole || start <= next
      if (!startsAfterHole) {
        ints.copyWithin(base(hole), base(next), base(next) + fieldInts)
        floats.copyWithin(fieldFloats * hole, fieldFloats * next, fieldFloats * (next + 1))
        hole = next
      }
    }
    ints.fill(0, base(hole), base(hole) + fieldInts)
    floats.fill(0, fieldFloats * hole, fieldFloats * (hole + 1))
    ints[countAt] = int(countAt) - 1
  }

  /** Frees a slot for a new address in a full table (see the module's doc); false when every entry has open connections. */
  const evict = (nowMs: number): boolean => {
    if (int(activeAt) >= int(countAt)) return false
    // Two turns of the hand find a slot if the counts are right; the bound guards against counts that are not.
    for (let step = 0; step < 2 * slots; step++) {
      const slot = int(handAt)
      ints[handAt] = (slot + 1) & mask
      if (!isUsed(slot) || open(slot) > 0) continue
      if (isIdle(slot, nowMs) || (int(base(slot)) & referenced) === 0) {
        remove(slot)
        return true
      }
      ints[base(slot)] = used
    }
    return false
  }

  /** Puts a new address in the table; its slot, or -1 when there is no room. */
  const insert = (words: Cidr.Words, nowMs: number): number => {
    let slot = idleSlot
    if (slot < 0) {
      if (int(countAt) >= maxEntries) {
        if (!evict(nowMs)) return -1
        find(words, nowMs)
      }
      slot = emptySlot
      ints[countAt] = int(countAt) + 1
    }
    const at = base(slot)
    ints[at + wordsField] = words[0]
    ints[at + wordsField + 1] = words[1]
    ints[at + wordsField + 2] = words[2]
    ints[at + wordsField + 3] = words[3]
    ints[at + openField] = 0
    floats[fieldFloats * slot + spentField] = 0
    floats[fieldFloats * slot + spentWhenField] = nowMs
    return slot
  }

  /** The verdict for an address with `count` open connections and `tokens` spent. */
  const verdict = (count: number, tokens: number): Verdict => {
    const { maxPerIp, rate } = limits
    if (maxPerIp !== undefined && count >= maxPerIp) return "per_ip_limit"
    if (rate !== undefined && tokens + 1 > rate.count + slack) return "rate_limit"
    return "ok"
  }

  const admit = (ip: string, nowMs: number): Verdict => {
    const words = Cidr.addressWords(ip)
    if (words === undefined) return "ok"
    let slot = find(words, nowMs)
    const result = slot < 0 ? verdict(0, 0) : verdict(open(slot), spent(slot, nowMs))
    if (slot >= 0) ints[base(slot)] = used | referenced
    if (result !== "ok") return result
    if (slot < 0) {
      slot = insert(words, nowMs)
      if (slot < 0) return limits.maxPerIp === undefined && limits.rate === undefined ? "ok" : "per_ip_limit"
      ints[base(slot)] = used | referenced
    }
    const at = base(slot) + openField
    if (int(at) === 0) ints[activeAt] = int(activeAt) + 1
    ints[at] = int(at) + 1
    if (threads > 0) ints[base(slot) + threadField] = int(base(slot) + threadField) + 1
    if (limits.rate !== undefined) {
      const when = fieldFloats * slot + spentWhenField
      floats[fieldFloats * slot + spentField] = spent(slot, nowMs) + 1
      floats[when] = Math.max(floats[when] ?? 0, nowMs)
    }
    return "ok"
  }

  const release = (ip: string): void => {
    const words = Cidr.addressWords(ip)
    if (words === undefined) return
    const slot = find(words, Number.NEGATIVE_INFINITY)
    if (slot < 0 || open(slot) === 0) return
    if (threads > 0) {
      if (int(base(slot) + threadField) === 0) return
      ints[base(slot) + threadField] = int(base(slot) + threadField) - 1
    }
    close(slot, 1)
  }

  /** Counts `count` of a slot's connections as closed; an entry with none left and no rate to keep goes. */
  const close = (slot: number, count: number): boolean => {
    const at = base(slot) + openField
    ints[at] = Math.max(0, int(at) - count)
    if (int(at) > 0) return false
    ints[activeAt] = int(activeAt) - 1
    if (limits.rate !== undefined) return false
    remove(slot)
    return true
  }

  const releaseThread = (thread: number): void => {
    if (threads === 0 || !(thread >= 1 && thread <= threads)) return
    const field = fixedInts + thread - 1
    for (let slot = 0; slot < slots; slot++) {
      // A removal shifts a later entry into this slot: look at it again.
      while (isUsed(slot) && int(base(slot) + field) > 0) {
        const count = int(base(slot) + field)
        ints[base(slot) + field] = 0
        if (!close(slot, count)) break
      }
    }
  }

  return {
    admit: (ip, nowMs) => locked(() => admit(ip, nowMs)),
    release: (ip) => locked(() => release(ip)),
    update: (next) => {
      limits = { maxPerIp: next.maxPerIp, rate: next.rate }
    },
    tracked: () => locked(() => int(countAt)),
    releaseThread: (thread) => locked(() => releaseThread(thread))
  }
}
