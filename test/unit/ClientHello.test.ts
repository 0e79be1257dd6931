import { assert, beforeAll, describe, it } from "@effect/vitest"
import * as net from "node:net"
import * as tls from "node:tls"
import * as ClientHello from "../../src/domain/ClientHello.ts"

// ---------------------------------------------------------------------------
// Real ClientHellos, captured from Node's own TLS client over loopback
// ---------------------------------------------------------------------------

/** Starts a plain TCP server on 127.0.0.1, points a TLS client at it, and returns the first record the client sends. */
const captureHello = (options: tls.ConnectionOptions): Promise<Buffer> =>
  new Promise((resolve, reject) => {
    const chunks: Array<Buffer> = []
    const sockets = new Set<net.Socket>()
    let client: tls.TLSSocket | undefined
    const server = net.createServer((socket) => {
      sockets.add(socket)
      socket.on("error", () => {})
      socket.on("data", (chunk: Buffer) => {
        chunks.push(chunk)
        const received = Buffer.concat(chunks)
        if (received.length >= 5 && received.length >= 5 + received.readUInt16BE(3)) finish(undefined, received)
      })
    })
    const timer = setTimeout(() => finish(new Error("no ClientHello within 5s")), 5000)
    const finish = (error: Error | undefined, hello?: Buffer) => {
      clearTimeout(timer)
      client?.destroy()
      sockets.forEach((socket) => socket.destroy())
      server.close()
      if (hello !== undefined) resolve(hello)
      else reject(error)
    }
    server.on("error", (error) => finish(error))
    server.listen(0, "127.0.0.1", () => {
      const address = server.address()
      if (address === null || typeof address === "string") return finish(new Error("no port"))
      client = tls.connect({ host: "127.0.0.1", port: address.port, ...options })
      client.on("error", () => {})
    })
  })

let withSni: Buffer = Buffer.alloc(0)
let withoutSni: Buffer = Buffer.alloc(0)
let tls12: Buffer = Buffer.alloc(0)

beforeAll(async () => {
  withSni = await captureHello({ servername: "api.example.com" })
  withoutSni = await captureHello({})
  tls12 = await captureHello({ servername: "Legacy.Example.COM", maxVersion: "TLSv1.2" })
})

const hello = (serverName: string | undefined, length: number): ClientHello.Peek => ({ _tag: "Hello", serverName, length })
const needMore: ClientHello.Peek = { _tag: "NeedMore" }

const assertMalformed = (result: ClientHello.Peek, reason?: RegExp) => {
  assert.strictEqual(result._tag, "Malformed", JSON.stringify(result))
  if (reason !== undefined && result._tag === "Malformed") assert.match(result.reason, reason)
}

/** Feeds `bytes` in slices of `size`, returning every answer until the first that is not `NeedMore`. */
const feed = (bytes: Uint8Array, size: number, maxBytes?: number): Array<ClientHello.Peek> => {
  const answers: Array<ClientHello.Peek> = []
  for (let end = Math.min(size, bytes.length); ; end = Math.min(end + size, bytes.length)) {
    const answer = ClientHello.peek(bytes.subarray(0, end), maxBytes)
    answers.push(answer)
    if (answer._tag !== "NeedMore" || end === bytes.length) return answers
  }
}

/** Re-splits a single-record hello's handshake message into records of the given sizes (the last size repeats). */
const refragment = (record: Uint8Array, sizes: ReadonlyArray<number>, version = 0x0303): Uint8Array => {
  const message = record.subarray(5)
  const out: Array<number> = []
  for (let at = 0, i = 0; at < message.length; i++) {
    const size = Math.min(sizes[Math.min(i, sizes.length - 1)] ?? 1, message.length - at)
    out.push(22, version >> 8, version & 0xff, size >> 8, size & 0xff, ...message.subarray(at, at + size))
    at += size
  }
  return Uint8Array.from(out)
}

describe("peek on real ClientHellos", () => {
  it("finds the server name of a TLS 1.3 hello", () => {
    assert.deepStrictEqual(ClientHello.peek(withSni), hello("api.example.com", withSni.length))
  })

  it("finds no server name when the client connects by IP", () => {
    assert.deepStrictEqual(ClientHello.peek(withoutSni), hello(undefined, withoutSni.length))
  })

  it("reads a TLS 1.2-only hello and lower-cases its name", () => {
    assert.deepStrictEqual(ClientHello.peek(tls12), hello("legacy.example.com", tls12.length))
  })

  it("says NeedMore for every proper prefix, byte by byte, then Hello", () => {
    for (const record of [withSni, withoutSni, tls12]) {
      const answers = feed(record, 1)
      assert.strictEqual(answers.length, record.length)
      assert.isTrue(answers.slice(0, -1).every((answer) => answer._tag === "NeedMore"))
      assert.deepStrictEqual(answers.at(-1), ClientHello.peek(record))
      assert.strictEqual(answers.at(-1)?._tag, "Hello")
    }
  })

  it("gives the same answer fed in small slices", () => {
    for (const size of [2, 3, 7, 64, 500]) {
      const answers = feed(withSni, size)
      assert.deepStrictEqual(answers.at(-1), hello("api.example.com", withSni.length))
      assert.isTrue(answers.slice(0, -1).every((answer) => answer._tag === "NeedMore"))
    }
  })

  it("ignores bytes after the hello's records", () => {
    const more = Buffer.concat([withSni, Buffer.from([23, 3, 3, 0, 5, 1, 2, 3, 4, 5]), Buffer.alloc(100, 0xff)])
    assert.deepStrictEqual(ClientHello.peek(more), hello("api.example.com", withSni.length))
  })

  it("reassembles a hello split across several handshake records", () => {
    for (const sizes of [[1, 3, 50, 1000], [100], [7], [2]]) {
      const records = refragment(withSni, sizes)
      assert.deepStrictEqual(ClientHello.peek(records), hello("api.example.com", records.length))
      const answers = feed(records, 5)
      assert.deepStrictEqual(answers.at(-1), hello("api.example.com", records.length))
      assert.isTrue(answers.slice(0, -1).every((answer) => answer._tag === "NeedMore"))
    }
    const legacy = refragment(tls12, [10], 0x0301)
    assert.deepStrictEqual(ClientHello.peek(legacy), hello("legacy.example.com", legacy.length))
  })

  it("counts record headers against maxBytes", () => {
    const records = refragment(withSni, [10])
    assert.deepStrictEqual(ClientHello.peek(records, records.length), hello("api.example.com", records.length))
    assertMalformed(ClientHello.peek(records, records.length - 1), /exceed/)
    assertMalformed(ClientHello.peek(withSni, withSni.length - 1), /exceed/)
    // Told early: the first record header already says the hello cannot fit.
    assertMalformed(ClientHello.peek(withSni.subarray(0, 5), withSni.length - 1), /exceed/)
  })

  it("rejects a record of another type inside a fragmented hello", () => {
    const records = refragment(withSni, [40])
    const spliced = Buffer.concat([records.subarray(0, 45), Buffer.from([21, 3, 3, 0, 2, 2, 40]), records.subarray(45)])
    assertMalformed(ClientHello.peek(spliced), /content type 21 inside/)
  })
})

// ---------------------------------------------------------------------------
// Crafted hellos
// ---------------------------------------------------------------------------

type Bytes = ReadonlyArray<number>

const u16 = (n: number): Bytes => [(n >> 8) & 0xff, n & 0xff]
const u24 = (n: number): Bytes => [(n >> 16) & 0xff, (n >> 8) & 0xff, n & 0xff]
const ascii = (text: string): Bytes => [...Buffer.from(text, "latin1")]
const vec16 = (data: Bytes): Bytes => [...u16(data.length), ...data]
const extension = (type: number, data: Bytes): Bytes => [...u16(type), ...vec16(data)]
const nameEntry = (name: string, type = 0): Bytes => [type, ...vec16(ascii(name))]
const sni = (...entries: ReadonlyArray<Bytes>): Bytes => extension(0, vec16(entries.flat()))
const supportedVersions = extension(0x2b, [2, 0x03, 0x04])

/** A ClientHello body up to its compression methods. */
const bodyHead = (
  options: { sessionId?: Bytes; suites?: Bytes; compression?: Bytes; version?: number } = {}
): Bytes => [
  ...u16(options.version ?? 0x0303),
  ...Array<number>(32).fill(7),
  (options.sessionId ?? []).length,
  ...(options.sessionId ?? []),
  ...vec16(options.suites ?? [0x13, 0x01]),
  (options.compression ?? [0]).length,
  ...(options.compression ?? [0])
]

/** A single-record ClientHello whose body is `body`; `extensions` becomes a well-formed extensions block. */
const record = (body: Bytes, options: { handshakeType?: number; handshakeLength?: number; recordLength?: number } = {}) => {
  const message = [options.handshakeType ?? 1, ...u24(options.handshakeLength ?? body.length), ...body]
  return Uint8Array.from([22, 3, 1, ...u16(options.recordLength ?? message.length), ...message])
}
const withExtensions = (...extensions: ReadonlyArray<Bytes>): Uint8Array =>
  record([...bodyHead(), ...vec16(extensions.flat())])

describe("peek on crafted hellos", () => {
  it("reads a minimal hello with SNI, and one without extensions", () => {
    const bytes = withExtensions(supportedVersions, sni(nameEntry("Www.Example.Org")))
    assert.deepStrictEqual(ClientHello.peek(bytes), hello("www.example.org", bytes.length))
    const bare = record(bodyHead())
    assert.deepStrictEqual(ClientHello.peek(bare), hello(undefined, bare.length))
    const empty = record([...bodyHead(), ...u16(0)])
    assert.deepStrictEqual(ClientHello.peek(empty), hello(undefined, empty.length))
  })

  it("takes the first host_name entry and skips other name types", () => {
    const bytes = withExtensions(sni(nameEntry("opaque", 7), nameEntry("a.example"), nameEntry("b.example")))
    assert.deepStrictEqual(ClientHello.peek(bytes), hello("a.example", bytes.length))
    const none = withExtensions(sni(nameEntry("opaque", 7)))
    assert.deepStrictEqual(ClientHello.peek(none), hello(undefined, none.length))
  })

  it("accepts names up to the DNS limits", () => {
    const label63 = "a".repeat(63)
    const name253 = [label63, label63, label63, "b".repeat(61)].join(".")
    assert.strictEqual(name253.length, 253)
    const bytes = withExtensions(sni(nameEntry(name253)))
    assert.deepStrictEqual(ClientHello.peek(bytes), hello(name253, bytes.length))
    const digits = withExtensions(sni(nameEntry("xn--bcher-kva.example-1.com")))
    assert.deepStrictEqual(ClientHello.peek(digits), hello("xn--bcher-kva.example-1.com", digits.length))
  })

  it("says NeedMore for a consistent hello that has not all arrived", () => {
    // The first of several records, whose handshake message goes on in the next one.
    assert.deepStrictEqual(ClientHello.peek(refragment(withSni, [100]).subarray(0, 105)), needMore)
    // A record cut short inside the extensions block.
    const bytes = withExtensions(supportedVersions, sni(nameEntry("a.example")))
    assert.deepStrictEqual(ClientHello.peek(bytes.subarray(0, bytes.length - 3)), needMore)
    assert.deepStrictEqual(ClientHello.peek(new Uint8Array(0)), needMore)
    assert.deepStrictEqual(ClientHello.peek(Uint8Array.from([22])), needMore)
    assert.deepStrictEqual(ClientHello.peek(Uint8Array.from([22, 3, 1, 0])), needMore)
  })

  const label64 = "c".repeat(64)
  const cases: ReadonlyArray<readonly [string, Uint8Array, RegExp]> = [
    ["an application data record", Uint8Array.from([23, 3, 3, 0, 10]), /content type 23/],
    ["a record type alone", Uint8Array.from([0x17]), /content type 23/],
    ["an SSLv2-style hello", Uint8Array.from([0x80, 0x2e, 1, 3, 1]), /content type 128/],
    ["a plain HTTP request", Uint8Array.from(Buffer.from("GET / HTTP/1.1\r\n")), /content type 71/],
    ["a record version that is not TLS", Uint8Array.from([22, 2, 0, 0, 10]), /record version/],
    ["an empty record", Uint8Array.from([22, 3, 1, 0, 0]), /empty handshake record/],
    ["a record longer than 2^14", Uint8Array.from([22, 3, 1, 0x40, 0x01]), /exceeds 16384/],
    ["a ServerHello", record(bodyHead(), { handshakeType: 2 }), /handshake type 2/],
    ["a handshake type alone", Uint8Array.from([22, 3, 1, 0, 40, 11]), /handshake type 11/],
    ["a handshake longer than maxBytes", record(bodyHead(), { handshakeLength: 0xffffff }), /exceeds 16384/],
    ["a handshake header alone claiming too much", Uint8Array.from([22, 3, 1, 0, 4, 1, 0, 0x40, 0]), /exceeds/],
    ["a handshake shorter than its fields", record(bodyHead(), { handshakeLength: 20 }), /random overruns the ClientHello/],
    ["a hello version that is not TLS", record(bodyHead({ version: 0x0200 })), /version 0x0200/],
    ["a 33-byte session id", record(bodyHead({ sessionId: Array<number>(33).fill(1) })), /session id of 33/],
    ["odd cipher suites", record(bodyHead({ suites: [0x13, 0x01, 0x13] })), /cipher suites length 3/],
    ["no cipher suites", record(bodyHead({ suites: [] })), /cipher suites length 0/],
    ["no compression methods", record(bodyHead({ compression: [] })), /no compression methods/],
    ["one stray byte for an extensions length", record([...bodyHead(), 0]), /extensions length overruns/],
    [
      "an extensions block longer than the hello",
      record([...bodyHead(), ...u16(sni(nameEntry("a.example")).length + 10), ...sni(nameEntry("a.example"))]),
      /extensions block of \d+ bytes overruns/
    ],
    [
      "bytes after the extensions block",
      record([...bodyHead(), ...vec16(supportedVersions), 0, 0]),
      /2 bytes after the extensions block/
    ],
    [
      "an extension longer than the block",
      record([...bodyHead(), ...vec16([...u16(0x2b), ...u16(10), 2, 3, 4])]),
      /extension 0x002b overruns the extensions block/
    ],
    [
      "a truncated extension header",
      record([...bodyHead(), ...vec16([...supportedVersions, 0, 10, 0])]),
      /extension 0x000a length overruns/
    ],
    [
      "a server name list longer than the extension",
      withExtensions(extension(0, [...u16(20), ...nameEntry("a.example")])),
      /list length 20 disagrees/
    ],
    [
      "a server name list shorter than the extension",
      withExtensions(extension(0, [...u16(3), ...nameEntry("a.example")])),
      /list length 3 disagrees/
    ],
    ["an empty server name list", withExtensions(extension(0, u16(0))), /empty server name list/],
    ["an empty server_name extension", withExtensions(extension(0, [])), /list length overruns/],
    [
      "a name longer than the list",
      withExtensions(extension(0, vec16([0, ...u16(50), ...ascii("a.example")]))),
      /server name overruns the server name list/
    ],
    [
      "a duplicate server_name extension",
      withExtensions(sni(nameEntry("a.example")), supportedVersions, sni(nameEntry("b.example"))),
      /duplicate server_name/
    ]
  ]

  /** Well-formed hellos whose name is no valid host name: they go to the default route (no name), not closed. */
  const notHostNames: ReadonlyArray<readonly [string, string]> = [
    ["an empty server name", ""],
    ["a 300-byte server name", `${"a.".repeat(149)}ab`],
    ["a 64-character label", `${label64}.example`],
    ["an empty label", "a..example"],
    ["a lone dot", "."],
    ["an underscore", "a_b.example"],
    ["a space", "a b.example"],
    ["a NUL byte", "a.example\u0000.evil"],
    ["a non-ASCII byte", "b\u00fccher.example"]
  ]

  it.each(notHostNames)("reads %s as no server name (the default route)", (_name, name) => {
    const bytes = withExtensions(sni(nameEntry(name)))
    assert.deepStrictEqual(ClientHello.peek(bytes), hello(undefined, bytes.length))
  })

  it("ignores a trailing dot: `a.example.` is `a.example`", () => {
    const bytes = withExtensions(sni(nameEntry("A.Example.")))
    assert.deepStrictEqual(ClientHello.peek(bytes), hello("a.example", bytes.length))
  })

  it.each(cases)("rejects %s", (_name, bytes, reason) => {
    assertMalformed(ClientHello.peek(bytes), reason)
  })

  it("gives the same verdict to every longer input once it has one", () => {
    for (const [, bytes] of cases) {
      const answers = feed(bytes, 1)
      const last = answers.at(-1)
      assert.deepStrictEqual(last, ClientHello.peek(bytes))
      assert.isTrue(answers.slice(0, -1).every((answer) => answer._tag === "NeedMore"))
    }
  })

  it("accepts more bytes than a record declares", () => {
    const bytes = withExtensions(sni(nameEntry("a.example")))
    const longer = Uint8Array.from([...bytes, 22, 3, 3, 0, 1, 0, 9, 9])
    assert.deepStrictEqual(ClientHello.peek(longer), hello("a.example", bytes.length))
  })

  it("rejects a record whose declared length reaches past maxBytes, whatever has arrived", () => {
    const bytes = withExtensions(sni(nameEntry("a.example")))
    assertMalformed(ClientHello.peek(bytes.subarray(0, 5), bytes.length - 1), /exceed/)
    assert.deepStrictEqual(ClientHello.peek(bytes.subarray(0, 5), bytes.length), needMore)
  })

  it("rejects a hello still incomplete after maxBytes", () => {
    // Two-byte records: the header overhead alone pushes the hello past a tight limit.
    const bytes = refragment(withExtensions(sni(nameEntry("a.example"))), [2])
    assertMalformed(ClientHello.peek(bytes, 40), /exceed|incomplete/)
    assert.strictEqual(ClientHello.peek(bytes, bytes.length)._tag, "Hello")
    // One-byte records: after two of them (12 bytes) even the handshake header has not arrived.
    const tiny = refragment(withExtensions(sni(nameEntry("a.example"))), [1])
    assert.deepStrictEqual(ClientHello.peek(tiny.subarray(0, 11), 12), needMore)
    assertMalformed(ClientHello.peek(tiny.subarray(0, 12), 12), /incomplete after 12 bytes/)
  })
})

// ---------------------------------------------------------------------------
// Garbage never throws
// ---------------------------------------------------------------------------

/** A small deterministic PRNG (mulberry32), so a failure can be replayed. */
const prng = (seed: number) => () => {
  seed = (seed + 0x6d2b79f5) | 0
  let t = Math.imul(seed ^ (seed >>> 15), 1 | seed)
  t = (t + Math.imul(t ^ (t >>> 7), 61 | t)) ^ t
  return ((t ^ (t >>> 14)) >>> 0) / 4294967296
}

const dnsName = /^[a-z0-9-]{1,63}(\.[a-z0-9-]{1,63})*$/

const assertSane = (bytes: Uint8Array, maxBytes?: number) => {
  const answer = ClientHello.peek(bytes, maxBytes)
  switch (answer._tag) {
    case "NeedMore":
      assert.isBelow(bytes.length, maxBytes ?? ClientHello.defaultMaxBytes)
      break
    case "Malformed":
      assert.isString(answer.reason)
      break
    case "Hello":
      assert.isAtMost(answer.length, bytes.length)
      if (answer.serverName !== undefined) assert.match(answer.serverName, dnsName)
      break
    default:
      assert.fail(`unexpected answer ${JSON.stringify(answer)}`)
  }
  return answer
}

/** Two answers agree: the same tag, and the same hello (reasons may differ when several things are wrong). */
const assertSameVerdict = (a: ClientHello.Peek | undefined, b: ClientHello.Peek) => {
  assert.strictEqual(a?._tag, b._tag)
  if (b._tag === "Hello") assert.deepStrictEqual(a, b)
}

describe("peek on garbage", () => {
  it("answers random buffers without throwing", () => {
    const random = prng(1)
    for (let i = 0; i < 2000; i++) {
      const bytes = Uint8Array.from({ length: Math.floor(random() * 600) }, () => Math.floor(random() * 256))
      // Half of them start like a handshake record, to get past the first checks.
      if (i % 2 === 0 && bytes.length >= 6) bytes.set([22, 3, Math.floor(random() * 4), bytes[3] ?? 0, bytes[4] ?? 0, 1])
      assertSane(bytes)
      assertSane(bytes, Math.floor(random() * 700))
    }
  })

  it("answers mutated and truncated real hellos without throwing", () => {
    const random = prng(2)
    const seeds = [withSni, withoutSni, tls12, refragment(withSni, [13])]
    for (let i = 0; i < 2000; i++) {
      const seed = seeds[i % seeds.length] ?? withSni
      const bytes = Uint8Array.from(seed.subarray(0, 1 + Math.floor(random() * seed.length)))
      const flips = 1 + Math.floor(random() * 4)
      for (let f = 0; f < flips; f++) bytes[Math.floor(random() * bytes.length)] = Math.floor(random() * 256)
      const answer = assertSane(bytes)
      // The last answer fed byte by byte agrees with the whole, for a sample.
      if (i % 50 === 0) assertSameVerdict(feed(bytes, 1).at(-1), answer)
    }
  })
})

// ---------------------------------------------------------------------------
// Matching server names to routes
// ---------------------------------------------------------------------------

describe("matchName", () => {
  const table: ReadonlyArray<readonly [ReadonlyArray<string>, string, "exact" | "wildcard" | undefined]> = [
    [["api.example.com"], "api.example.com", "exact"],
    [["API.Example.com"], "api.EXAMPLE.com", "exact"],
    [["*.example.com"], "a.example.com", "wildcard"],
    [["*.Example.COM"], "A.example.com", "wildcard"],
    [["*.example.com"], "example.com", undefined],
    [["*.example.com"], "a.b.example.com", undefined],
    [["*.example.com"], "aexample.com", undefined],
    [["*.example.com"], ".example.com", undefined],
    [["*.example.com", "a.example.com"], "a.example.com", "exact"],
    [["*.api.example.com"], "v1.api.example.com", "wildcard"],
    [["other.example.com"], "api.example.com", undefined],
    [["a*.example.com"], "ab.example.com", undefined],
    [[], "api.example.com", undefined]
  ]
  it.each(table)("%j against %s is %s", (patterns, name, expected) => {
    assert.strictEqual(ClientHello.matchName(patterns, name), expected)
  })
})

describe("selectRoute", () => {
  const routes = [
    { id: "wild", sni: ["*.example.com"] },
    { id: "api", sni: ["api.example.com", "*.api.example.com"] },
    { id: "web", sni: ["web.example.com"] },
    { id: "wild-again", sni: ["*.example.com", "*.example.org"] },
    { id: "api-again", sni: ["API.example.com"] }
  ] as const

  const table: ReadonlyArray<readonly [string | undefined, string | undefined]> = [
    ["api.example.com", "api"], // exact beats an earlier wildcard
    ["API.EXAMPLE.COM", "api"],
    ["web.example.com", "web"],
    ["x.example.com", "wild"], // first wildcard
    ["v2.api.example.com", "api"],
    ["x.example.org", "wild-again"],
    ["example.com", undefined],
    ["a.b.example.com", undefined],
    ["elsewhere.net", undefined],
    [undefined, undefined]
  ]
  it.each(table)("%s goes to %s", (name, expected) => {
    assert.strictEqual(ClientHello.selectRoute(routes, name)?.id, expected)
  })

  it("finds nothing without routes", () => {
    assert.strictEqual(ClientHello.selectRoute([], "api.example.com"), undefined)
  })
})
