/**
 * Reading the PROXY protocol header (HAProxy's spec, versions 1 and 2) that a
 * load balancer in front (`--accept-proxy`) sends before its client's bytes,
 * to learn the client's real address.
 *
 * The reader is incremental: the caller hands it every byte received so far
 * each time more arrive, and it answers `NeedMore` until it can tell. It
 * decides as early as the bytes allow (a wrong first byte, signature, version
 * or command is `Malformed` at once, and so is a v1 line that has gone past
 * 107 bytes without its CRLF), never reads past the bytes given, never
 * throws, and leaves the bytes after the header (the client's own) alone.
 *
 * Addresses come out as Node spells a socket's `remoteAddress`: IPv6
 * lower-case and compressed, IPv4-mapped IPv6 as the IPv4 address.
 *
 * @since 0.1.0
 */
import { isIP } from "node:net"
import * as Cidr from "./Cidr.ts"
import { v2Signature } from "./ProxyProtocol.ts"

/** An address and port. */
export interface Endpoint {
  readonly address: string
  readonly port: number
}

/**
 * A header: the client's connection as the load balancer saw it. There are
 * no endpoints for v1 `UNKNOWN`, v2 `LOCAL` (the load balancer's own health
 * check: keep the peer's address) and v2 `UNSPEC`.
 */
export interface Header {
  readonly version: 1 | 2
  readonly command: "PROXY" | "LOCAL"
  /** The client's address and port. */
  readonly source?: Endpoint
  /** The address and port the client connected to. */
  readonly destination?: Endpoint
}

/** The outcome of reading the bytes received so far. */
export type Read =
  | { readonly _tag: "NeedMore" }
  | { readonly _tag: "Malformed"; readonly reason: string }
  /** `length` is the bytes the header took; the rest are the client's. */
  | { readonly _tag: "Header"; readonly header: Header; readonly length: number }

/** The longest v1 header, CRLF included. */
export const v1MaxLength = 107

/** The most address and TLV bytes accepted after the 16 bytes of a v2 header's fixed part. */
export const v2MaxPayload = 4096

const needMore: Read = { _tag: "NeedMore" }
const malformed = (reason: string): Read => ({ _tag: "Malformed", reason })

const cr = 0x0d
const lf = 0x0a

// ---------------------------------------------------------------------------
// Addresses
// ---------------------------------------------------------------------------

const dotted = (high: number, low: number): string => `${high >>> 8}.${high & 0xff}.${low >>> 8}.${low & 0xff}`

/**
 * Eight 16-bit groups as Node (libuv) writes them: the longest run of two or
 * more zero groups (the first of equals) as `::`, IPv4-compatible `::a.b.c.d`
 * dotted, and IPv4-mapped as the bare IPv4 address.
 */
const formatIPv6 = (groups: ReadonlyArray<number>): string => {
  const group = (i: number): number => groups[i] ?? 0
  let runStart = -1
  let runLength = 0
  for (let i = 0, start = -1; i < 8; i++) {
    if (group(i) !== 0) {
      start = -1
      continue
    }
    if (start < 0) start = i
    if (i - start + 1 > runLength) {
      runStart = start
      runLength = i - start + 1
    }
  }
  if (runStart === 0 && runLength === 5 && group(5) === 0xffff) return dotted(group(6), group(7))
  if (runStart === 0 && runLength === 6) return `::${dotted(group(6), group(7))}`
  if (runLength < 2) return groups.map((value) => value.toString(16)).join(":")
  const hex = (from: number, to: number) =>
    groups.slice(from, to).map((value) => value.toString(16)).join(":")
  return `${hex(0, runStart)}::${hex(runStart + runLength, 8)}`
}

const groupsOfWords = (words: Cidr.Words): Array<number> =>
  words.flatMap((word) => [word >>> 16, word & 0xffff])

/** The byte at `i`, or -1 past the end. */
const byteAt = (bytes: Uint8Array, i: number): number => bytes[i] ?? -1

const uint16At = (bytes: Uint8Array, i: number): number => byteAt(bytes, i) * 256 + byteAt(bytes, i + 1)

// ---------------------------------------------------------------------------
// Version 1: one text line
// ---------------------------------------------------------------------------

const v1Starts = ["PROXY TCP4 ", "PROXY TCP6 ", "PROXY UNKNOWN"]
const v1Characters = /^[0-9A-Fa-f.: ]*$/
const port = /^(?:0|[1-9]\d{0,4})$/

/**
 * Why a v1 line (without its CRLF) cannot be a header, if its start already
 * tells; `complete` when the CRLF has come, so that the line can grow no more.
 */
const v1StartProblem = (line: string, complete: boolean): string | undefined => {
  const start = v1Starts.find((start) => line.startsWith(start) || (!complete && start.startsWith(line)))
  if (start === undefined) return `v1 header must start "PROXY TCP4 ", "PROXY TCP6 " or "PROXY UNKNOWN"`
  if (start.startsWith("PROXY TCP") && !v1Characters.test(line.slice(start.length))) {
    return `v1 header has a character that belongs in no address or port: ${JSON.stringify(line)}`
  }
  return undefined
}

const v1Endpoint = (address: string, portText: string, family: 4 | 6): Endpoint | undefined => {
  if (isIP(address) !== family || !port.test(portText) || Number(portText) > 65535) return undefined
  const words = family === 6 ? Cidr.addressWords(address) : undefined
  return { address: words === undefined ? address : formatIPv6(groupsOfWords(words)), port: Number(portText) }
}

/** A whole v1 line, without its CRLF, that passed `v1StartProblem` as complete. */
const v1Header = (line: string, length: number): Read => {
  if (line.startsWith("PROXY UNKNOWN")) return { _tag: "Header", header: { version: 1, command: "PROXY" }, length }
  const [, protocol, source, destination, sourcePort, destinationPort, ...rest] = line.split(" ")
  const family = protocol === "TCP4" ? 4 : 6
  const from = v1Endpoint(source ?? "", sourcePort ?? "", family)
  const to = v1Endpoint(destination ?? "", destinationPort ?? "", family)
  if (from === undefined || to === undefined || rest.length > 0) {
    return malformed(
      `v1 header must be "PROXY ${protocol} SOURCE DESTINATION SOURCE_PORT DESTINATION_PORT" ` +
        `with IPv${family} addresses, single spaces and ports 0-65535: ${JSON.stringify(line)}`
    )
  }
  return { _tag: "Header", header: { version: 1, command: "PROXY", source: from, destination: to }, length }
}

const readV1 = (bytes: Uint8Array): Read => {
  const scanned = Math.min(bytes.length, v1MaxLength)
  let end = scanned
  for (let i = 0; i < scanned; i++) {
    const byte = byteAt(bytes, i)
    if (byte === lf) return malformed("v1 header has a line feed without a carriage return")
    if (byte === cr) {
      end = i
      break
    }
  }
  const line = String.fromCharCode(...bytes.subarray(0, end))
  const problem = v1StartProblem(line, end < scanned)
  if (problem !== undefined) return malformed(problem)
  if (end + 2 > v1MaxLength) return malformed(`v1 header is longer than ${v1MaxLength} bytes`)
  if (end + 1 >= bytes.length) return needMore
  if (byteAt(bytes, end + 1) !== lf) return malformed("v1 header has a carriage return without a line feed")
  return v1Header(line, end + 2)
}

// ---------------------------------------------------------------------------
// Version 2: binary
// ---------------------------------------------------------------------------

const fixedLength = 16
const familyIPv4 = 0x11
const familyIPv6 = 0x21
const familyUnspec = 0x00

const v2Endpoints = (bytes: Uint8Array, family: number): Header => {
  const start = fixedLength
  if (family === familyIPv4) {
    const address = (at: number) => dotted(uint16At(bytes, at), uint16At(bytes, at + 2))
    return {
      version: 2,
      command: "PROXY",
      source: { address: address(start), port: uint16At(bytes, start + 8) },
      destination: { address: address(start + 4), port: uint16At(bytes, start + 10) }
    }
  }
  const address = (at: number) => formatIPv6(Array.from({ length: 8 }, (_, i) => uint16At(bytes, at + 2 * i)))
  return {
    version: 2,
    command: "PROXY",
    source: { address: address(start), port: uint16At(bytes, start + 32) },
    destination: { address: address(start + 16), port: uint16At(bytes, start + 34) }
  }
}

const readV2 = (bytes: Uint8Array): Read => {
  for (let i = 0; i < Math.min(bytes.length, v2Signature.length); i++) {
    if (byteAt(bytes, i) !== v2Signature[i]) return malformed("not a PROXY protocol v2 signature")
  }
  if (bytes.length <= 12) return needMore
  const versionAndCommand = byteAt(bytes, 12)
  if (versionAndCommand >>> 4 !== 2) return malformed(`v2 header has version ${versionAndCommand >>> 4}, expected 2`)
  const command = versionAndCommand & 0x0f
  if (command > 1) return malformed(`v2 header has command ${command}, expected 0 (LOCAL) or 1 (PROXY)`)
  if (bytes.length <= 13) return needMore
  // LOCAL ignores the address block, whatever its family.
  const family = byteAt(bytes, 13)
  if (command === 1 && family !== familyIPv4 && family !== familyIPv6 && family !== familyUnspec) {
    return malformed(
      `v2 header has address family and protocol 0x${family.toString(16).padStart(2, "0")}, ` +
        `expected TCP over IPv4 (0x11) or IPv6 (0x21), or UNSPEC (0x00)`
    )
  }
  if (bytes.length < fixedLength) return needMore
  const payload = uint16At(bytes, 14)
  if (payload > v2MaxPayload) {
    return malformed(`v2 header is too long: ${payload} bytes of addresses and TLVs, at most ${v2MaxPayload}`)
  }
  const needed = command === 0 ? 0 : family === familyIPv4 ? 12 : family === familyIPv6 ? 36 : 0
  if (payload < needed) {
    return malformed(`v2 header has ${payload} bytes of addresses, ${needed} needed for its address family`)
  }
  const length = fixedLength + payload
  if (bytes.length < length) return needMore
  const header: Header = command === 0
    ? { version: 2, command: "LOCAL" }
    : family === familyUnspec
    ? { version: 2, command: "PROXY" }
    : v2Endpoints(bytes, family)
  return { _tag: "Header", header, length }
}

/**
 * Reads a PROXY protocol header, v1 or v2, from the start of the bytes
 * received so far (see the module's doc).
 */
export const read = (bytes: Uint8Array): Read => {
  const first = byteAt(bytes, 0)
  if (first === -1) return needMore
  if (first === 0x50) return readV1(bytes)
  if (first === cr) return readV2(bytes)
  return malformed("no PROXY protocol header: expected \"PROXY \" (v1) or the v2 signature")
}
