import { assert, describe, it } from "@effect/vitest"
import { isIP, SocketAddress } from "node:net"
import { unmapIPv4 } from "../../src/domain/Address.ts"
import * as ProxyProtocol from "../../src/domain/ProxyProtocol.ts"
import * as Reader from "../../src/domain/ProxyProtocolReader.ts"
import { prng } from "./checks.ts"

const text = (value: string): Uint8Array => Buffer.from(value, "latin1")
const bytes = (...values: ReadonlyArray<number>): Uint8Array => Uint8Array.from(values)
const concat = (...parts: ReadonlyArray<Uint8Array>): Uint8Array => Buffer.concat(parts)

/** The header read from the bytes, failing the test otherwise; checks the length it took. */
const header = (input: Uint8Array, length = input.length): Reader.Header => {
  const result = Reader.read(input)
  if (result._tag !== "Header") return assert.fail(`expected a header, got ${JSON.stringify(result)}`)
  assert.strictEqual(result.length, length)
  return result.header
}

/** The reason the bytes were refused, failing the test otherwise. */
const malformed = (input: Uint8Array): string => {
  const result = Reader.read(input)
  if (result._tag !== "Malformed") return assert.fail(`expected Malformed, got ${JSON.stringify(result)}`)
  return result.reason
}

const needsMore = (input: Uint8Array): void => {
  assert.deepStrictEqual(Reader.read(input), { _tag: "NeedMore" }, JSON.stringify([...input]))
}

const v4 = { sourceAddress: "192.0.2.1", sourcePort: 56324, destinationAddress: "198.51.100.1", destinationPort: 443 }
const v6 = { sourceAddress: "2001:db8::1", sourcePort: 4242, destinationAddress: "::1", destinationPort: 8080 }
const v4Header: Reader.Header = {
  version: 1,
  command: "PROXY",
  source: { address: "192.0.2.1", port: 56324 },
  destination: { address: "198.51.100.1", port: 443 }
}
const v6Header: Reader.Header = {
  version: 1,
  command: "PROXY",
  source: { address: "2001:db8::1", port: 4242 },
  destination: { address: "::1", port: 8080 }
}

/** A v2 header by hand: version and command byte, family byte, address block (TLVs included). */
const v2 = (versionAndCommand: number, family: number, block: ReadonlyArray<number> = []): Uint8Array =>
  concat(ProxyProtocol.v2Signature, bytes(versionAndCommand, family, block.length >>> 8, block.length & 0xff, ...block))

describe("ProxyProtocolReader: v1", () => {
  it("reads TCP4 and TCP6 lines from the v1 writer", () => {
    assert.deepStrictEqual(header(ProxyProtocol.v1(v4)), v4Header)
    assert.deepStrictEqual(header(ProxyProtocol.v1(v6)), v6Header)
  })

  it("reads UNKNOWN, with or without anything after it up to the CRLF", () => {
    assert.deepStrictEqual(header(text("PROXY UNKNOWN\r\n")), { version: 1, command: "PROXY" })
    assert.deepStrictEqual(header(text("PROXY UNKNOWN ffff::1 ffff::2 1 2\r\n")), { version: 1, command: "PROXY" })
    assert.deepStrictEqual(header(text("PROXY UNKNOWN\u0000\u00ff junk\r\n")), { version: 1, command: "PROXY" })
  })

  it("writes IPv6 addresses as Node does, IPv4-mapped ones as IPv4", () => {
    const read = header(text("PROXY TCP6 2001:DB8:0:0:0:0:0:1 ::ffff:192.0.2.9 0 65535\r\n"))
    assert.deepStrictEqual(read.source, { address: "2001:db8::1", port: 0 })
    assert.deepStrictEqual(read.destination, { address: "192.0.2.9", port: 65535 })
  })

  it("takes up to 107 bytes, CRLF included", () => {
    const longest = `PROXY UNKNOWN ${"f".repeat(107 - 16)}\r\n`
    assert.strictEqual(longest.length, 107)
    header(text(longest))
    const tooLong = `PROXY UNKNOWN ${"f".repeat(108 - 16)}\r\n`
    assert.include(malformed(text(tooLong)), "longer than 107 bytes")
  })

  it("refuses a line that cannot end within 107 bytes without waiting for more", () => {
    needsMore(text(`PROXY UNKNOWN ${"f".repeat(105 - 14)}`))
    assert.include(malformed(text(`PROXY UNKNOWN ${"f".repeat(106 - 14)}`)), "longer than 107 bytes")
    assert.include(malformed(text(`PROXY UNKNOWN ${"f".repeat(500)}`)), "longer than 107 bytes")
    // A CR at byte 107 leaves no room for the LF.
    assert.include(malformed(text(`PROXY UNKNOWN ${"f".repeat(106 - 14)}\r`)), "longer than 107 bytes")
  })

  it("refuses bad tokens, addresses, ports and spacing", () => {
    const lines = [
      "PROXY TCP5 192.0.2.1 198.51.100.1 1 2",
      "PROXY tcp4 192.0.2.1 198.51.100.1 1 2",
      "PROXY  TCP4 192.0.2.1 198.51.100.1 1 2",
      "PROXY TCP4  192.0.2.1 198.51.100.1 1 2",
      "PROXY TCP4 192.0.2.1  198.51.100.1 1 2",
      "PROXY TCP4 192.0.2.1 198.51.100.1 1 2 ",
      "PROXY TCP4 192.0.2.1 198.51.100.1 1",
      "PROXY TCP4 192.0.2.1 198.51.100.1 1 2 3",
      "PROXY TCP4 192.0.2.1 198.51.100.1",
      "PROXY TCP4",
      "PROXY TCP4 ",
      "PROXY",
      "PROXY ",
      "PROXY UNKNOW",
      "PROXY TCP4 2001:db8::1 198.51.100.1 1 2",
      "PROXY TCP6 192.0.2.1 2001:db8::1 1 2",
      "PROXY TCP4 256.0.2.1 198.51.100.1 1 2",
      "PROXY TCP4 01.0.2.1 198.51.100.1 1 2",
      "PROXY TCP4 192.0.2 198.51.100.1 1 2",
      "PROXY TCP6 2001:db8:::1 ::1 1 2",
      "PROXY TCP6 fe80::1%eth0 ::1 1 2",
      "PROXY TCP4 192.0.2.1 198.51.100.1 65536 2",
      "PROXY TCP4 192.0.2.1 198.51.100.1 080 2",
      "PROXY TCP4 192.0.2.1 198.51.100.1 -1 2",
      "PROXY TCP4 192.0.2.1 198.51.100.1 +1 2",
      "PROXY TCP4 192.0.2.1 198.51.100.1 1a 2",
      "PROXY TCP4 192.0.2.1 198.51.100.1 1 0x2",
      "PROXY TCP4 192.0.2.1 198.51.100.1 123456 2",
      "PROXY TCP4 192.0.2.1\t198.51.100.1 1 2"
    ]
    for (const line of lines) malformed(text(`${line}\r\n`))
  })

  it("refuses a wrong start, a bad character, or a lone CR or LF as soon as it is seen", () => {
    assert.include(malformed(text("PROXX")), "must start")
    assert.include(malformed(text("PROXY TCP7")), "must start")
    assert.include(malformed(text("PROXY TCP4 192.0.2.1x")), "character")
    assert.include(malformed(text("PROXY TCP4 192.0.2.1\n")), "line feed")
    assert.include(malformed(text("PROXY UNKNOWN\rX")), "carriage return")
    needsMore(text("PROXY UNKNOWN\r"))
    needsMore(text("PROXY TCP4 192.0.2.1 198.51.100.1 1 2\r"))
  })
})

describe("ProxyProtocolReader: v2", () => {
  it("reads TCP over IPv4 and IPv6 from the v2 writer", () => {
    assert.deepStrictEqual(header(ProxyProtocol.v2(v4)), { ...v4Header, version: 2 })
    assert.deepStrictEqual(header(ProxyProtocol.v2(v6)), { ...v6Header, version: 2 })
  })

  it("reads UNSPEC (from the writer, given two families) with no addresses", () => {
    assert.deepStrictEqual(header(ProxyProtocol.v2({ ...v4, destinationAddress: "::1" })), {
      version: 2,
      command: "PROXY"
    })
    assert.deepStrictEqual(header(v2(0x21, 0x00, [1, 2, 3])), { version: 2, command: "PROXY" })
  })

  it("reads LOCAL, whatever its address block holds", () => {
    assert.deepStrictEqual(header(v2(0x20, 0x00)), { version: 2, command: "LOCAL" })
    assert.deepStrictEqual(header(v2(0x20, 0x11, Array(12).fill(7))), { version: 2, command: "LOCAL" })
    assert.deepStrictEqual(header(v2(0x20, 0x31, [1, 2])), { version: 2, command: "LOCAL" })
  })

  it("reads addresses built by hand, skipping TLVs", () => {
    const ipv4 = [192, 0, 2, 1, 198, 51, 100, 1, 0xdc, 0x04, 0x01, 0xbb]
    const tlvs = [0x01, 0x00, 0x02, 0x68, 0x32, 0x04, 0x00, 0x00]
    assert.deepStrictEqual(header(v2(0x21, 0x11, [...ipv4, ...tlvs])), { ...v4Header, version: 2 })
    const mapped = [...Array(10).fill(0), 0xff, 0xff, 192, 0, 2, 1]
    const loopback = [...Array(15).fill(0), 1]
    assert.deepStrictEqual(header(v2(0x21, 0x21, [...mapped, ...loopback, 0, 80, 0xff, 0xff])), {
      version: 2,
      command: "PROXY",
      source: { address: "192.0.2.1", port: 80 },
      destination: { address: "::1", port: 65535 }
    })
  })

  it("accepts the longest address block and refuses a longer one, saying so", () => {
    header(v2(0x21, 0x11, Array(4096).fill(1)))
    const reason = malformed(v2(0x21, 0x11, Array(4097).fill(1)))
    assert.include(reason, "too long")
    assert.include(reason, "4097")
    // Decided from the length field alone.
    assert.include(malformed(concat(ProxyProtocol.v2Signature, bytes(0x21, 0x11, 0xff, 0xff))), "too long")
  })

  it("refuses a bad signature, version, command, family or address length", () => {
    assert.include(malformed(bytes(0x0d, 0x0a, 0x0d, 0x0a, 0x00, 0x0d, 0x0a, 0x51, 0x55, 0x49, 0x54, 0x0b)), "signature")
    assert.include(malformed(bytes(0x0d, 0x0a, 0x0d, 0x0b)), "signature")
    assert.include(malformed(bytes(0x0d, 0x0d)), "signature")
    assert.include(malformed(v2(0x11, 0x11, Array(12).fill(0))), "version 1")
    assert.include(malformed(v2(0x31, 0x11, Array(12).fill(0))), "version 3")
    assert.include(malformed(v2(0x22, 0x11, Array(12).fill(0))), "command 2")
    assert.include(malformed(v2(0x2f, 0x11, Array(12).fill(0))), "command 15")
    for (const family of [0x12, 0x22, 0x31, 0x32, 0x01, 0x10, 0x41, 0xff]) {
      assert.include(malformed(v2(0x21, family, Array(36).fill(0))), "address family", family.toString(16))
    }
    assert.include(malformed(v2(0x21, 0x11, Array(11).fill(0))), "12 needed")
    assert.include(malformed(v2(0x21, 0x21, Array(35).fill(0))), "36 needed")
  })

  it("decides on each field as soon as it arrives", () => {
    assert.include(malformed(concat(ProxyProtocol.v2Signature, bytes(0x11))), "version")
    assert.include(malformed(concat(ProxyProtocol.v2Signature, bytes(0x23))), "command")
    assert.include(malformed(concat(ProxyProtocol.v2Signature, bytes(0x21, 0x12))), "address family")
    assert.include(malformed(concat(ProxyProtocol.v2Signature, bytes(0x21, 0x11, 0, 4))), "12 needed")
  })
})

describe("ProxyProtocolReader: any header", () => {
  it("refuses a first byte that starts no header at once", () => {
    for (const first of ["G", "\u0016", "p", " ", "\n", "\u0000"]) assert.include(malformed(text(first)), "no PROXY protocol header")
    assert.include(malformed(text("GET / HTTP/1.1\r\n\r\n")), "no PROXY protocol header")
  })

  it("needs more when nothing has arrived", () => {
    needsMore(new Uint8Array(0))
  })

  const examples: ReadonlyArray<readonly [string, Uint8Array]> = [
    ["v1 TCP4", ProxyProtocol.v1(v4)],
    ["v1 TCP6", ProxyProtocol.v1(v6)],
    ["v1 UNKNOWN", text("PROXY UNKNOWN\r\n")],
    ["v2 TCP4", ProxyProtocol.v2(v4)],
    ["v2 TCP6", ProxyProtocol.v2(v6)],
    ["v2 UNSPEC", ProxyProtocol.v2({ ...v4, destinationAddress: "::1" })],
    ["v2 LOCAL", v2(0x20, 0x00)],
    ["v2 TCP4 with TLVs", v2(0x21, 0x11, [...Array(12).fill(1), 0x04, 0x00, 0x03, 1, 2, 3])]
  ]

  it("needs more for every prefix of a header arriving one byte at a time", () => {
    for (const [name, full] of examples) {
      for (let length = 0; length < full.length; length++) {
        assert.deepStrictEqual(Reader.read(full.subarray(0, length)), { _tag: "NeedMore" }, `${name}, ${length} bytes`)
      }
      assert.strictEqual(Reader.read(full)._tag, "Header", name)
    }
  })

  it("leaves the client's bytes after the header alone", () => {
    const data = text("GET / HTTP/1.1\r\nHost: example.com\r\n\r\n")
    for (const [name, full] of examples) {
      const input = concat(full, data)
      const copy = Uint8Array.from(input)
      const alone = header(full)
      assert.deepStrictEqual(header(input, full.length), alone, name)
      assert.deepStrictEqual(input, copy, name)
      assert.deepStrictEqual(input.subarray(full.length), data, name)
    }
  })

  it("writes IPv6 addresses exactly as Node does", () => {
    const random = prng(3)
    for (let n = 0; n < 5_000; n++) {
      // Zero groups are common, so that runs of every length and position come up.
      const groups = Array.from({ length: 8 }, () => (random.int(2) === 0 ? 0 : random.int(3) === 0 ? 0xffff : random.int(65536)))
      if (random.int(8) === 0) groups.splice(0, 6, 0, 0, 0, 0, 0, 0xffff)
      const block = [...groups.flatMap((group) => [group >>> 8, group & 0xff]), ...Array(16).fill(0), 0, 1, 0, 2]
      const read = header(v2(0x21, 0x21, block))
      const full = groups.map((group) => group.toString(16)).join(":")
      assert.strictEqual(read.source?.address, unmapIPv4(new SocketAddress({ address: full, family: "ipv6" }).address), full)
    }
  })
})

describe("ProxyProtocolReader: fuzz", () => {
  /** Checks what `read` promises whatever the input, and that its decision stands as more bytes arrive. */
  const check = (input: Uint8Array, more: Uint8Array): void => {
    const result = Reader.read(input)
    switch (result._tag) {
      case "NeedMore":
        break
      case "Malformed":
        assert.isAbove(result.reason.length, 0)
        assert.notInclude(result.reason, "\n")
        assert.strictEqual(Reader.read(concat(input, more))._tag, "Malformed")
        break
      case "Header": {
        assert.isAbove(result.length, 0)
        assert.isAtMost(result.length, input.length)
        for (const endpoint of [result.header.source, result.header.destination]) {
          if (endpoint === undefined) continue
          assert.notStrictEqual(isIP(endpoint.address), 0, endpoint.address)
          assert.isTrue(Number.isInteger(endpoint.port) && endpoint.port >= 0 && endpoint.port <= 65535)
        }
        assert.deepStrictEqual(Reader.read(concat(input, more)), result)
        assert.deepStrictEqual(Reader.read(input.subarray(0, result.length)), result)
        break
      }
      default:
        assert.fail(`unexpected result ${JSON.stringify(result)}`)
    }
  }

  const randomBytes = (random: ReturnType<typeof prng>, length: number): Uint8Array =>
    Uint8Array.from({ length }, () => random.int(256))

  /** A valid header with random addresses, ports and TLVs. */
  const randomHeader = (random: ReturnType<typeof prng>): Uint8Array => {
    const ipv4 = () => Array.from({ length: 4 }, () => random.int(256)).join(".")
    const ipv6 = () => Array.from({ length: 8 }, () => (random.int(2) === 0 ? 0 : random.int(65536)).toString(16)).join(":")
    const address = random.int(2) === 0 ? ipv4 : ipv6
    const endpoints = {
      sourceAddress: address(),
      sourcePort: random.int(65536),
      destinationAddress: address(),
      destinationPort: random.int(65536)
    }
    switch (random.int(5)) {
      case 0:
        return ProxyProtocol.v1(endpoints)
      case 1:
        return ProxyProtocol.v2(endpoints)
      case 2:
        return v2(0x20, random.int(256), [...randomBytes(random, random.int(40))])
      case 3:
        return text(`PROXY UNKNOWN${String.fromCharCode(...randomBytes(random, random.int(80)).filter((b) => b !== 13 && b !== 10))}\r\n`)
      default: {
        const written = ProxyProtocol.v2(endpoints)
        const tlvs = [...randomBytes(random, random.int(200))]
        return v2(written[12] ?? 0, written[13] ?? 0, [...written.subarray(16), ...tlvs])
      }
    }
  }

  it("never throws on random bytes, and each result keeps its promises", () => {
    const random = prng(1234)
    const starts = [text("P"), text("PROXY "), text("PROXY TCP4 "), text("PROXY TCP6 "), ProxyProtocol.v2Signature, new Uint8Array(0)]
    for (let n = 0; n < 20_000; n++) {
      const start = starts[random.int(starts.length)] ?? new Uint8Array(0)
      const input = concat(start, randomBytes(random, random.int(random.int(2) === 0 ? 20 : 300)))
      check(input, randomBytes(random, 1 + random.int(10)))
    }
  })

  it("never throws on mutated valid headers, and every prefix of a valid one needs more", () => {
    const random = prng(99)
    let headers = 0
    for (let n = 0; n < 3_000; n++) {
      const valid = randomHeader(random)
      const result = Reader.read(valid)
      assert.strictEqual(result._tag, "Header", JSON.stringify([...valid]))
      for (let length = 0; length < valid.length; length++) {
        assert.strictEqual(Reader.read(valid.subarray(0, length))._tag, "NeedMore", `${length} of ${JSON.stringify([...valid])}`)
      }
      // Mutations: flipped, inserted, deleted bytes, and a cut.
      const mutated = Uint8Array.from(valid)
      for (let flips = random.int(3) + 1; flips > 0; flips--) mutated[random.int(mutated.length)] = random.int(256)
      const at = random.int(valid.length)
      const inserted = concat(valid.subarray(0, at), randomBytes(random, 1 + random.int(4)), valid.subarray(at))
      const deleted = concat(valid.subarray(0, at), valid.subarray(at + 1 + random.int(4)))
      for (const input of [mutated, inserted, deleted, valid.subarray(0, at)]) {
        check(input, randomBytes(random, 1 + random.int(10)))
        if (Reader.read(input)._tag === "Header") headers++
      }
    }
    // Some mutations still make headers (a changed address or port), most do not.
    assert.isAbove(headers, 300)
  })
})
