/**
 * A pure reader of the TLS ClientHello a client sends first, far enough to
 * find its server name (SNI) and route the connection on it, plus the
 * matching of server names against route patterns (`api.example.com`,
 * `*.example.com`).
 *
 * The reader looks at the bytes received so far and says whether the hello
 * is complete, still arriving, or malformed, so a caller can feed it each
 * time more bytes arrive and stop at the first answer that is not
 * `NeedMore`. It never throws, whatever the bytes.
 *
 * @since 0.1.0
 */

/**
 * What the bytes received so far say:
 * - `NeedMore`: the hello is not complete yet, and what arrived is consistent
 *   and under the size limit;
 * - `Malformed`: the bytes cannot be the start of an acceptable ClientHello
 *   (`reason` says why); more bytes will not change that;
 * - `Hello`: a complete ClientHello, with its first host name lower-cased
 *   (`undefined` when it sends none) and `length`, the number of bytes taken
 *   by the records that carry it (bytes after them are not looked at).
 */
export type Peek =
  | { readonly _tag: "NeedMore" }
  | { readonly _tag: "Malformed"; readonly reason: string }
  | { readonly _tag: "Hello"; readonly serverName: string | undefined; readonly length: number }

/** The default limit on the bytes a ClientHello may take, record headers included. */
export const defaultMaxBytes = 16 * 1024

const recordHeaderSize = 5
const handshakeHeaderSize = 4
const maxRecordLength = 16 * 1024
const contentTypeHandshake = 22
const handshakeClientHello = 1
const extensionServerName = 0
const nameTypeHostName = 0
const maxSessionId = 32
const maxHostName = 253
const maxLabel = 63

/** A `Peek` that ends the parsing early. */
type Stop = Exclude<Peek, { readonly _tag: "Hello" }>

const needMore: Stop = { _tag: "NeedMore" }
const malformed = (reason: string): Stop => ({ _tag: "Malformed", reason })

const isStop = <A>(value: A | Stop): value is Stop =>
  typeof value === "object" && value !== null && "_tag" in value

const u8 = (bytes: Uint8Array, at: number): number => bytes[at] ?? 0
const u16 = (bytes: Uint8Array, at: number): number => (u8(bytes, at) << 8) | u8(bytes, at + 1)
const u24 = (bytes: Uint8Array, at: number): number => (u8(bytes, at) << 16) | u16(bytes, at + 1)
const hex = (value: number, digits: number): string => `0x${value.toString(16).padStart(digits, "0")}`

// ---------------------------------------------------------------------------
// Record layer
// ---------------------------------------------------------------------------

/** The handshake bytes gathered from the leading records. */
interface Stream {
  /** The handshake bytes so far, including those of a record still arriving. */
  readonly data: Uint8Array
  /** How many records (the last possibly incomplete) carried them. */
  readonly records: number
  /** The offset just past the last complete record. */
  readonly end: number
  /** Whether the whole handshake message sits in complete records. */
  readonly complete: boolean
}

/** Checks the part of a record header at `offset` that has arrived; the record's length once all of it has. */
const recordHeader = (bytes: Uint8Array, offset: number, first: boolean): number | Stop | undefined => {
  const available = bytes.length - offset
  if (available >= 1 && u8(bytes, offset) !== contentTypeHandshake) {
    return malformed(
      first
        ? `not a TLS handshake record (content type ${u8(bytes, offset)})`
        : `record of content type ${u8(bytes, offset)} inside the ClientHello`
    )
  }
  if (available >= 2 && u8(bytes, offset + 1) !== 3) {
    return malformed(`record version ${hex(u16(bytes, offset + 1), 4)} is not TLS (0x03xx)`)
  }
  if (available < recordHeaderSize) return undefined
  const length = u16(bytes, offset + 3)
  if (length === 0) return malformed("empty handshake record")
  if (length > maxRecordLength) return malformed(`record length ${length} exceeds ${maxRecordLength}`)
  return length
}

/** The handshake message's total size, once its header has arrived. */
const messageSize = (data: Uint8Array, have: number): number | undefined =>
  have >= handshakeHeaderSize ? handshakeHeaderSize + u24(data, 1) : undefined

/** Gathers the handshake bytes of consecutive handshake records until the message they carry is whole. */
const readRecords = (bytes: Uint8Array, maxBytes: number): Stream | Stop => {
  const data = new Uint8Array(bytes.length)
  let have = 0
  let offset = 0
  let records = 0
  for (;;) {
    const size = messageSize(data, have)
    if (size !== undefined && have >= size) {
      return { data: data.subarray(0, have), records, end: offset, complete: true }
    }
    const length = recordHeader(bytes, offset, records === 0)
    if (isStop(length)) return length
    if (length === undefined) return { data: data.subarray(0, have), records, end: offset, complete: false }
    const recordEnd = offset + recordHeaderSize + length
    if (recordEnd > maxBytes) return malformed(`ClientHello records exceed ${maxBytes} bytes`)
    const fragment = bytes.subarray(offset + recordHeaderSize, recordEnd)
    data.set(fragment, have)
    have += fragment.length
    records += 1
    if (fragment.length < length) return { data: data.subarray(0, have), records, end: offset, complete: false }
    offset = recordEnd
  }
}

// ---------------------------------------------------------------------------
// Handshake message
// ---------------------------------------------------------------------------

/** A region of the message with a declared end, named for error reasons. */
interface Container {
  readonly name: string
  readonly end: number
}

/** A read position over the bytes of the ClientHello body received so far. */
interface Cursor {
  readonly body: Uint8Array
  at: number
}

/** The next `size` bytes, which must fit in `within`; `NeedMore` when they fit but have not all arrived. */
const take = (cursor: Cursor, size: number, within: Container, what: string): Uint8Array | Stop => {
  const end = cursor.at + size
  if (end > within.end) return malformed(`${what} overruns the ${within.name}`)
  if (end > cursor.body.length) return needMore
  const bytes = cursor.body.subarray(cursor.at, end)
  cursor.at = end
  return bytes
}

/** A big-endian length prefix of `size` bytes (1 or 2). */
const takeLength = (cursor: Cursor, size: 1 | 2, within: Container, what: string): number | Stop => {
  const bytes = take(cursor, size, within, what)
  return isStop(bytes) ? bytes : size === 1 ? u8(bytes, 0) : u16(bytes, 0)
}

const isHostByte = (byte: number): boolean =>
  (byte >= 0x61 && byte <= 0x7a) || // a-z
  (byte >= 0x41 && byte <= 0x5a) || // A-Z
  (byte >= 0x30 && byte <= 0x39) || // 0-9
  byte === 0x2d || // -
  byte === 0x2e // .

/**
 * The host name of a server_name entry, lower-cased and without a trailing
 * dot, when it is a DNS name (letters, digits, `-`, labels of 1 to 63, at most
 * 253 in all); `undefined` when it is not, so that such a client goes to the
 * default route (its hello is otherwise well formed).
 */
const hostName = (raw: Uint8Array): string | undefined => {
  const length = raw.length > 0 && raw[raw.length - 1] === 0x2e ? raw.length - 1 : raw.length
  if (length === 0 || length > maxHostName) return undefined
  const bytes = raw.subarray(0, length)
  if (!bytes.every(isHostByte)) return undefined
  const name = String.fromCharCode(...bytes).toLowerCase()
  return name.split(".").every((label) => label.length > 0 && label.length <= maxLabel) ? name : undefined
}

/** The first host name of a complete server_name extension, or `undefined` when it lists none. */
const serverNameExtension = (data: Uint8Array): string | undefined | Stop => {
  const cursor: Cursor = { body: data, at: 0 }
  const listLength = takeLength(cursor, 2, { name: "server_name extension", end: data.length }, "server name list length")
  if (isStop(listLength)) return listLength
  if (listLength + 2 !== data.length) {
    return malformed(`server name list length ${listLength} disagrees with the extension length ${data.length}`)
  }
  if (listLength === 0) return malformed("empty server name list")
  const list: Container = { name: "server name list", end: data.length }
  let first: string | undefined
  while (cursor.at < list.end) {
    const type = takeLength(cursor, 1, list, "server name type")
    if (isStop(type)) return type
    const length = takeLength(cursor, 2, list, "server name length")
    if (isStop(length)) return length
    const raw = take(cursor, length, list, "server name")
    if (isStop(raw)) return raw
    if (type === nameTypeHostName && first === undefined) first = hostName(raw)
  }
  return first
}

/** Walks the extensions block, returning the server name; every extension must fit, and server_name may appear once. */
const extensions = (cursor: Cursor, block: Container): string | undefined | Stop => {
  let seen = false
  let serverName: string | undefined
  while (cursor.at < block.end) {
    const type = takeLength(cursor, 2, block, "extension type")
    if (isStop(type)) return type
    const length = takeLength(cursor, 2, block, `extension ${hex(type, 4)} length`)
    if (isStop(length)) return length
    const data = take(cursor, length, block, `extension ${hex(type, 4)}`)
    if (isStop(data)) return data
    if (type === extensionServerName) {
      if (seen) return malformed("duplicate server_name extension")
      seen = true
      const name = serverNameExtension(data)
      if (isStop(name)) return name
      serverName = name
    }
  }
  return serverName
}

/** Reads a ClientHello body (of declared length `declared`, possibly not all arrived) up to its server name. */
const clientHelloBody = (body: Uint8Array, declared: number): string | undefined | Stop => {
  const hello: Container = { name: "ClientHello", end: declared }
  const cursor: Cursor = { body, at: 0 }
  const version = take(cursor, 2, hello, "legacy version")
  if (isStop(version)) return version
  if (u8(version, 0) !== 3) return malformed(`ClientHello version ${hex(u16(version, 0), 4)} is not TLS (0x03xx)`)
  const random = take(cursor, 32, hello, "random")
  if (isStop(random)) return random

  const sessionIdLength = takeLength(cursor, 1, hello, "session id length")
  if (isStop(sessionIdLength)) return sessionIdLength
  if (sessionIdLength > maxSessionId) return malformed(`session id of ${sessionIdLength} bytes is longer than 32`)
  const sessionId = take(cursor, sessionIdLength, hello, "session id")
  if (isStop(sessionId)) return sessionId

  const suitesLength = takeLength(cursor, 2, hello, "cipher suites length")
  if (isStop(suitesLength)) return suitesLength
  if (suitesLength === 0 || suitesLength % 2 !== 0) return malformed(`cipher suites length ${suitesLength} is not a positive even number`)
  const suites = take(cursor, suitesLength, hello, "cipher suites")
  if (isStop(suites)) return suites

  const compressionLength = takeLength(cursor, 1, hello, "compression methods length")
  if (isStop(compressionLength)) return compressionLength
  if (compressionLength === 0) return malformed("no compression methods")
  const compression = take(cursor, compressionLength, hello, "compression methods")
  if (isStop(compression)) return compression

  if (cursor.at === declared) return undefined // a hello without extensions
  const blockLength = takeLength(cursor, 2, hello, "extensions length")
  if (isStop(blockLength)) return blockLength
  const blockEnd = cursor.at + blockLength
  if (blockEnd > declared) return malformed(`extensions block of ${blockLength} bytes overruns the ClientHello`)
  if (blockEnd < declared) return malformed(`${declared - blockEnd} bytes after the extensions block`)
  return extensions(cursor, { name: "extensions block", end: blockEnd })
}

/** Checks the handshake header and reads the ClientHello's server name from the handshake bytes so far. */
const handshake = (stream: Stream, maxBytes: number): string | undefined | Stop => {
  const { data } = stream
  if (data.length < 1) return needMore
  if (u8(data, 0) !== handshakeClientHello) return malformed(`handshake type ${u8(data, 0)} is not ClientHello (1)`)
  const size = messageSize(data, data.length)
  if (size === undefined) return needMore
  // Every record seen so far adds its header to the bytes the hello takes.
  if (size + recordHeaderSize * stream.records > maxBytes) {
    return malformed(`ClientHello of ${size} bytes exceeds ${maxBytes} bytes`)
  }
  return clientHelloBody(data.subarray(handshakeHeaderSize, Math.min(data.length, size)), size - handshakeHeaderSize)
}

/**
 * Looks at the first bytes a client sent: a TLS ClientHello in one or more
 * consecutive handshake records, which together may take at most `maxBytes`
 * bytes. See `Peek` for the answers.
 */
export const peek = (bytes: Uint8Array, maxBytes: number = defaultMaxBytes): Peek => {
  const stream = readRecords(bytes, maxBytes)
  if (isStop(stream)) return stream
  const serverName = handshake(stream, maxBytes)
  const waiting = isStop(serverName) ? serverName._tag === "NeedMore" : !stream.complete
  if (waiting) {
    return bytes.length >= maxBytes ? malformed(`ClientHello incomplete after ${maxBytes} bytes`) : needMore
  }
  if (isStop(serverName)) return serverName
  return { _tag: "Hello", serverName, length: stream.end }
}

// ---------------------------------------------------------------------------
// Routing on the server name
// ---------------------------------------------------------------------------

/** How a name matches one pattern: equal (ignoring case), or `*.rest` with exactly one label before `rest`. */
const matchOne = (pattern: string, name: string): "exact" | "wildcard" | undefined => {
  const p = pattern.toLowerCase()
  const n = name.toLowerCase()
  if (p === n) return "exact"
  if (!p.startsWith("*.")) return undefined
  const suffix = p.slice(1) // ".rest"
  if (!n.endsWith(suffix)) return undefined
  const label = n.slice(0, n.length - suffix.length)
  return label.length > 0 && !label.includes(".") ? "wildcard" : undefined
}

/**
 * How `name` matches a route's patterns: `"exact"` if one equals it (ignoring
 * case), else `"wildcard"` if a `*.example.com` pattern covers it (exactly
 * one label in place of `*`), else `undefined`.
 */
export const matchName = (patterns: ReadonlyArray<string>, name: string): "exact" | "wildcard" | undefined => {
  const matches = patterns.map((pattern) => matchOne(pattern, name))
  return matches.includes("exact") ? "exact" : matches.includes("wildcard") ? "wildcard" : undefined
}

/**
 * The route for a server name: the first route with an exact match, else the
 * first with a wildcard match, else `undefined` (also for no name at all).
 */
export const selectRoute = <R extends { readonly sni: ReadonlyArray<string> }>(
  routes: ReadonlyArray<R>,
  name: string | undefined
): R | undefined =>
  name === undefined
    ? undefined
    : routes.find((route) => matchName(route.sni, name) === "exact") ??
      routes.find((route) => matchName(route.sni, name) === "wildcard")
