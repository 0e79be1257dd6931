/**
 * IP address ranges, as `--allow`, `--deny` and `--accept-proxy` take them:
 * `10.0.0.0/8`, `2001:db8::/32`, or a bare address for a single host.
 *
 * A range inside `::ffff:0:0/96` (IPv4-mapped IPv6) is the IPv4 range it
 * covers, and a client whose address is IPv4-mapped is matched as IPv4, so
 * `::ffff:10.0.0.0/104` and `10.0.0.0/8` mean the same. A wider IPv6 range
 * (`::/0`) covers IPv6 clients only, as in nginx: it never matches an IPv4
 * client. Host bits below the prefix are ignored (`10.0.0.1/8` is
 * `10.0.0.0/8`), as in HAProxy.
 *
 * A `Matcher` merges its ranges into sorted, non-overlapping intervals per
 * family and binary-searches them, so a check stays cheap with thousands of
 * ranges: IPv4 addresses as uint32 numbers, IPv6 as four uint32 words
 * compared in order.
 *
 * @since 0.1.0
 */
import * as Result from "effect/Result"

/** An IPv6 address as four uint32 words, most significant first. */
export type Words = readonly [number, number, number, number]

/** A range of addresses: the network (host bits cleared) and the prefix length. */
export type Range =
  | { readonly family: 4; readonly network: number; readonly prefix: number }
  | { readonly family: 6; readonly network: Words; readonly prefix: number }

// ---------------------------------------------------------------------------
// Address text
// ---------------------------------------------------------------------------

const hexValue = (code: number): number =>
  code >= 48 && code <= 57 ? code - 48 : code >= 97 && code <= 102 ? code - 87 : code >= 65 && code <= 70 ? code - 55 : -1

/** Dotted-quad text between `start` and `end` as a uint32, or -1: the forms `isIP` accepts (no leading zeros). */
const readIPv4 = (text: string, start: number, end: number): number => {
  let value = 0
  let part = 0
  let digits = 0
  let dots = 0
  for (let i = start; i < end; i++) {
    const code = text.charCodeAt(i)
    if (code === 46) {
      if (digits === 0 || dots === 3) return -1
      value = value * 256 + part
      part = 0
      digits = 0
      dots++
    } else if (code >= 48 && code <= 57) {
      if (digits > 0 && part === 0) return -1
      part = part * 10 + code - 48
      if (part > 255) return -1
      digits++
    } else {
      return -1
    }
  }
  return dots === 3 && digits > 0 ? value * 256 + part : -1
}

/** Eight 16-bit groups, with `::` at `gap` standing for the missing ones, as four words. */
const toWords = (groups: ReadonlyArray<number>, gap: number): Words => {
  const full = gap < 0
    ? groups
    : [...groups.slice(0, gap), ...Array<number>(8 - groups.length).fill(0), ...groups.slice(gap)]
  const word = (i: number) => (full[2 * i] ?? 0) * 65536 + (full[2 * i + 1] ?? 0)
  return [word(0), word(1), word(2), word(3)]
}

/** IPv6 text between `start` and `end` as words, or `undefined`: the forms `isIP` accepts, without a zone. */
const readIPv6 = (text: string, start: number, end: number): Words | undefined => {
  const groups: Array<number> = []
  let gap = -1
  let i = start
  if (text.charCodeAt(i) === 58) {
    if (i + 1 >= end || text.charCodeAt(i + 1) !== 58) return undefined
    gap = 0
    i += 2
    if (i === end) return toWords(groups, gap)
  }
  for (;;) {
    const groupStart = i
    let value = 0
    while (i < end && i - groupStart < 4) {
      const digit = hexValue(text.charCodeAt(i))
      if (digit < 0) break
      value = value * 16 + digit
      i++
    }
    if (i < end && text.charCodeAt(i) === 46) {
      // An embedded IPv4 address ends the text and takes the last two groups.
      const ipv4 = groups.length <= 6 ? readIPv4(text, groupStart, end) : -1
      if (ipv4 < 0) return undefined
      groups.push(ipv4 >>> 16, ipv4 & 0xffff)
      break
    }
    if (i === groupStart || groups.length === 8) return undefined
    groups.push(value)
    if (i === end) break
    if (text.charCodeAt(i) !== 58) return undefined
    i++
    if (i < end && text.charCodeAt(i) === 58) {
      if (gap >= 0) return undefined
      gap = groups.length
      i++
      if (i === end) break
    } else if (i === end) {
      return undefined
    }
  }
  // `::` stands for at least one group.
  return (gap < 0 ? groups.length === 8 : groups.length <= 7) ? toWords(groups, gap) : undefined
}

/** A scope zone after `%`, as `isIP` accepts it (`fe80::1%eth0`). */
const zone = /^[0-9a-zA-Z.:-]+$/

const isMapped = (words: Words): boolean => words[0] === 0 && words[1] === 0 && words[2] === 0xffff

/**
 * A client address as Node reports it (IPv4, IPv6 with an optional `%zone`,
 * IPv4-mapped IPv6) as four words, IPv4 as `::ffff:a.b.c.d`, so that both
 * spellings of an IPv4 client are one key; `undefined` for anything else.
 */
export const addressWords = (ip: string): Words | undefined => {
  const ipv4 = readIPv4(ip, 0, ip.length)
  if (ipv4 >= 0) return [0, 0, 0xffff, ipv4]
  const percent = ip.indexOf("%")
  if (percent < 0) return readIPv6(ip, 0, ip.length)
  return zone.test(ip.slice(percent + 1)) ? readIPv6(ip, 0, percent) : undefined
}

// ---------------------------------------------------------------------------
// Parsing ranges
// ---------------------------------------------------------------------------

/** The top `bits` bits of a uint32 word, the rest cleared. */
const maskWord = (word: number, bits: number): number =>
  bits <= 0 ? 0 : bits >= 32 ? word : (word & (0xffffffff << (32 - bits))) >>> 0

/** The top `bits` bits of a uint32 word, the rest set. */
const fillWord = (word: number, bits: number): number =>
  bits <= 0 ? 0xffffffff : bits >= 32 ? word : (word | (0xffffffff >>> bits)) >>> 0

const maskWords = (words: Words, prefix: number, along: (word: number, bits: number) => number): Words => [
  along(words[0], prefix),
  along(words[1], prefix - 32),
  along(words[2], prefix - 64),
  along(words[3], prefix - 96)
]

/**
 * Parses `ADDRESS/PREFIX` or a bare `ADDRESS` (one host); fails with a
 * one-line reason naming the input.
 */
export const parse = (text: string): Result.Result<Range, string> => {
  const input = text.trim()
  if (input === "") return Result.fail("empty address range (expected ADDRESS or ADDRESS/PREFIX)")
  const slash = input.indexOf("/")
  const address = slash < 0 ? input : input.slice(0, slash)
  const ipv6 = address.includes(":") ? readIPv6(address, 0, address.length) : undefined
  const ipv4 = ipv6 === undefined ? readIPv4(address, 0, address.length) : -1
  if (ipv6 === undefined && ipv4 < 0) return Result.fail(`invalid IP address in "${input}"`)
  const bits = ipv6 === undefined ? 32 : 128
  const prefixText = slash < 0 ? String(bits) : input.slice(slash + 1)
  if (!/^\d{1,3}$/.test(prefixText)) return Result.fail(`invalid prefix in "${input}"`)
  const prefix = Number(prefixText)
  if (prefix > bits) {
    return Result.fail(`prefix out of range in "${input}" (0-${bits} for IPv${ipv6 === undefined ? 4 : 6})`)
  }
  if (ipv6 === undefined) return Result.succeed({ family: 4, network: maskWord(ipv4, prefix), prefix })
  if (prefix >= 96 && isMapped(ipv6)) {
    return Result.succeed({ family: 4, network: maskWord(ipv6[3], prefix - 96), prefix: prefix - 96 })
  }
  return Result.succeed({ family: 6, network: maskWords(ipv6, prefix, maskWord), prefix })
}

/**
 * Parses a list of ranges: comma-separated text (spaces allowed) or a list
 * of items (as a config file gives them); fails with the first bad item.
 */
export const parseList = (input: string | ReadonlyArray<string>): Result.Result<ReadonlyArray<Range>, string> => {
  const items = typeof input === "string" ? input.split(",") : input
  const ranges: Array<Range> = []
  for (const item of items) {
    if (typeof input === "string" && item.trim() === "") return Result.fail(`empty address range in "${input}"`)
    const range = parse(item)
    if (Result.isFailure(range)) return Result.fail(range.failure)
    ranges.push(range.success)
  }
  return Result.succeed(ranges)
}

// ---------------------------------------------------------------------------
// Matching
// ---------------------------------------------------------------------------

/** Checks client addresses against a set of ranges. */
export interface Matcher {
  /**
   * Whether a client address (as Node reports it: IPv4, IPv6, IPv4-mapped
   * IPv6) is in one of the ranges; false for text that is no address.
   */
  readonly matches: (ip: string) => boolean
  /** True when there are no ranges, so nothing matches. */
  readonly isEmpty: boolean
}

/** The IPv4 intervals, merged: `starts[i]..ends[i]`, sorted and disjoint. */
const ipv4Intervals = (ranges: ReadonlyArray<{ readonly network: number; readonly prefix: number }>) => {
  const sorted = ranges
    .map(({ network, prefix }): readonly [number, number] => [network, network + 2 ** (32 - prefix) - 1])
    .sort((a, b) => a[0] - b[0] || b[1] - a[1])
  const starts: Array<number> = []
  const ends: Array<number> = []
  for (const [start, end] of sorted) {
    const last = ends.length - 1
    const lastEnd = ends[last] ?? -1
    if (start <= lastEnd) {
      ends[last] = Math.max(lastEnd, end)
    } else {
      starts.push(start)
      ends.push(end)
    }
  }
  return { starts: Float64Array.from(starts), ends: Float64Array.from(ends) }
}

/** Compares an address with the four words at `offset` of `array`. */
const compareAt = (words: Words, array: Uint32Array, offset: number): number => {
  for (let i = 0; i < 4; i++) {
    const other = array[offset + i] ?? 0
    if (words[i] !== other) return (words[i] ?? 0) < other ? -1 : 1
  }
  return 0
}

const compareWords = (a: Words, b: Words): number => {
  for (let i = 0; i < 4; i++) {
    if (a[i] !== b[i]) return (a[i] ?? 0) < (b[i] ?? 0) ? -1 : 1
  }
  return 0
}

/** The IPv6 intervals, merged: four words per address, `starts` and `ends` at `4 * i`, sorted and disjoint. */
const ipv6Intervals = (ranges: ReadonlyArray<{ readonly network: Words; readonly prefix: number }>) => {
  const sorted = ranges
    .map(({ network, prefix }): readonly [Words, Words] => [network, maskWords(network, prefix, fillWord)])
    .sort((a, b) => compareWords(a[0], b[0]) || compareWords(b[1], a[1]))
  const merged: Array<readonly [Words, Words]> = []
  for (const [start, end] of sorted) {
    const last = merged[merged.length - 1]
    // CIDR ranges are nested or disjoint: an overlapping one lies inside the last.
    if (last === undefined || compareWords(start, last[1]) > 0) merged.push([start, end])
  }
  return {
    starts: Uint32Array.from(merged.flatMap(([start]) => start)),
    ends: Uint32Array.from(merged.flatMap(([, end]) => end))
  }
}

/** The index of the last interval starting at or before the address, or -1. */
const searchLast = (count: number, startsAfter: (i: number) => boolean): number => {
  let low = 0
  let high = count
  while (low < high) {
    const middle = (low + high) >>> 1
    if (startsAfter(middle)) high = middle
    else low = middle + 1
  }
  return low - 1
}

/** A matcher over the ranges. */
export const matcher = (ranges: ReadonlyArray<Range>): Matcher => {
  const ipv4 = ipv4Intervals(ranges.flatMap((range) => (range.family === 4 ? [range] : [])))
  const ipv6 = ipv6Intervals(ranges.flatMap((range) => (range.family === 6 ? [range] : [])))
  const ipv6Count = ipv6.starts.length / 4

  const matchesIPv4 = (address: number): boolean => {
    const i = searchLast(ipv4.starts.length, (i) => (ipv4.starts[i] ?? 0) > address)
    return i >= 0 && address <= (ipv4.ends[i] ?? -1)
  }

  const matchesIPv6 = (words: Words): boolean => {
    const i = searchLast(ipv6Count, (i) => compareAt(words, ipv6.starts, 4 * i) < 0)
    return i >= 0 && compareAt(words, ipv6.ends, 4 * i) <= 0
  }

  return {
    isEmpty: ranges.length === 0,
    matches: (ip) => {
      const address = readIPv4(ip, 0, ip.length)
      if (address >= 0) return matchesIPv4(address)
      const words = addressWords(ip)
      if (words === undefined) return false
      return isMapped(words) ? matchesIPv4(words[3]) : matchesIPv6(words)
    }
  }
}
