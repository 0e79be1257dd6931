import { assert, describe, it } from "@effect/vitest"
import { isIP } from "node:net"
import * as Cidr from "../../src/domain/Cidr.ts"
import { ok, prng, rejected } from "./checks.ts"

describe("Cidr.parse", () => {
  it("parses IPv4 and IPv6 ranges", () => {
    assert.deepStrictEqual(ok(Cidr.parse("10.0.0.0/8")), { family: 4, network: 0x0a000000, prefix: 8 })
    assert.deepStrictEqual(ok(Cidr.parse("0.0.0.0/0")), { family: 4, network: 0, prefix: 0 })
    assert.deepStrictEqual(ok(Cidr.parse("255.255.255.255/32")), { family: 4, network: 0xffffffff, prefix: 32 })
    assert.deepStrictEqual(ok(Cidr.parse("2001:db8::/32")), { family: 6, network: [0x20010db8, 0, 0, 0], prefix: 32 })
    assert.deepStrictEqual(ok(Cidr.parse("::/0")), { family: 6, network: [0, 0, 0, 0], prefix: 0 })
    assert.deepStrictEqual(
      ok(Cidr.parse("FE80:0:0:0:1:2:3:4/128")),
      { family: 6, network: [0xfe800000, 0, 0x10002, 0x30004], prefix: 128 }
    )
  })

  it("reads a bare address as a single host", () => {
    assert.deepStrictEqual(ok(Cidr.parse("192.0.2.7")), { family: 4, network: 0xc0000207, prefix: 32 })
    assert.deepStrictEqual(ok(Cidr.parse("::1")), { family: 6, network: [0, 0, 0, 1], prefix: 128 })
    assert.deepStrictEqual(ok(Cidr.parse(" 192.0.2.7 ")), ok(Cidr.parse("192.0.2.7/32")))
  })

  it("clears host bits below the prefix", () => {
    assert.deepStrictEqual(ok(Cidr.parse("10.0.0.1/8")), ok(Cidr.parse("10.0.0.0/8")))
    assert.deepStrictEqual(ok(Cidr.parse("192.0.2.255/25")), ok(Cidr.parse("192.0.2.128/25")))
    assert.deepStrictEqual(ok(Cidr.parse("1.2.3.4/0")), ok(Cidr.parse("0.0.0.0/0")))
    assert.deepStrictEqual(ok(Cidr.parse("2001:db8:ffff::1/33")), ok(Cidr.parse("2001:db8:8000::/33")))
    assert.deepStrictEqual(ok(Cidr.parse("2001:db8::1/64")), ok(Cidr.parse("2001:db8::/64")))
    assert.deepStrictEqual(ok(Cidr.parse("::ffff/127")), ok(Cidr.parse("::fffe/127")))
  })

  it("reads IPv4-mapped IPv6 ranges as the IPv4 range they cover", () => {
    assert.deepStrictEqual(ok(Cidr.parse("::ffff:10.0.0.0/104")), ok(Cidr.parse("10.0.0.0/8")))
    assert.deepStrictEqual(ok(Cidr.parse("::ffff:a00:1/104")), ok(Cidr.parse("10.0.0.0/8")))
    assert.deepStrictEqual(ok(Cidr.parse("::ffff:192.0.2.7")), ok(Cidr.parse("192.0.2.7")))
    assert.deepStrictEqual(ok(Cidr.parse("::ffff:0:0/96")), ok(Cidr.parse("0.0.0.0/0")))
    // Wider than the mapped block: stays IPv6.
    assert.strictEqual(ok(Cidr.parse("::ffff:0:0/95")).family, 6)
    assert.strictEqual(ok(Cidr.parse("::/0")).family, 6)
  })

  it("rejects bad addresses, naming the input", () => {
    for (
      const input of [
        "10.0.0",
        "10.0.0.256/8",
        "010.0.0.0/8",
        "10.0.0.0.0",
        "example.com",
        "2001:db8:::/32",
        "2001:db8::g/32",
        "1:2:3:4:5:6:7:8:9",
        "fe80::1%eth0",
        "/8"
      ]
    ) {
      assert.include(rejected(Cidr.parse(input)), `invalid IP address in "${input}"`, input)
    }
  })

  it("rejects bad and out-of-range prefixes, naming the input", () => {
    for (const input of ["10.0.0.0/", "10.0.0.0/x", "10.0.0.0/-1", "10.0.0.0/+8", "10.0.0.0/1234", "::/8/8"]) {
      assert.include(rejected(Cidr.parse(input)), `invalid prefix in "${input}"`, input)
    }
    assert.strictEqual(rejected(Cidr.parse("10.0.0.0/33")), `prefix out of range in "10.0.0.0/33" (0-32 for IPv4)`)
    assert.strictEqual(rejected(Cidr.parse("::/129")), `prefix out of range in "::/129" (0-128 for IPv6)`)
  })

  it("rejects empty text", () => {
    assert.include(rejected(Cidr.parse("")), "empty address range")
    assert.include(rejected(Cidr.parse("  ")), "empty address range")
  })
})

describe("Cidr.parseList", () => {
  it("parses comma-separated text, spaces allowed", () => {
    assert.deepStrictEqual(
      ok(Cidr.parseList("10.0.0.0/8, 192.0.2.7 ,2001:db8::/32")),
      [ok(Cidr.parse("10.0.0.0/8")), ok(Cidr.parse("192.0.2.7")), ok(Cidr.parse("2001:db8::/32"))]
    )
  })

  it("parses a list", () => {
    assert.deepStrictEqual(
      ok(Cidr.parseList(["10.0.0.0/8", " ::1 "])),
      [ok(Cidr.parse("10.0.0.0/8")), ok(Cidr.parse("::1"))]
    )
    assert.deepStrictEqual(ok(Cidr.parseList([])), [])
  })

  it("fails with the first bad item", () => {
    assert.strictEqual(rejected(Cidr.parseList("10.0.0.0/8,10.0.0.0/40,bad")), `prefix out of range in "10.0.0.0/40" (0-32 for IPv4)`)
    assert.strictEqual(rejected(Cidr.parseList(["::1", "nope"])), `invalid IP address in "nope"`)
  })

  it("rejects empty items in text, naming the whole text", () => {
    assert.strictEqual(rejected(Cidr.parseList("10.0.0.0/8,")), `empty address range in "10.0.0.0/8,"`)
    assert.strictEqual(rejected(Cidr.parseList("10.0.0.0/8, ,::1")), `empty address range in "10.0.0.0/8, ,::1"`)
    assert.strictEqual(rejected(Cidr.parseList("")), `empty address range in ""`)
  })
})

describe("Cidr.addressWords", () => {
  it("reads IPv4, IPv6, IPv4-mapped and zoned addresses", () => {
    assert.deepStrictEqual(Cidr.addressWords("192.0.2.7"), [0, 0, 0xffff, 0xc0000207])
    assert.deepStrictEqual(Cidr.addressWords("::ffff:192.0.2.7"), [0, 0, 0xffff, 0xc0000207])
    assert.deepStrictEqual(Cidr.addressWords("0:0:0:0:0:ffff:c000:207"), [0, 0, 0xffff, 0xc0000207])
    assert.deepStrictEqual(Cidr.addressWords("2001:db8::1"), [0x20010db8, 0, 0, 1])
    assert.deepStrictEqual(Cidr.addressWords("fe80::1%eth0"), [0xfe800000, 0, 0, 1])
    assert.deepStrictEqual(Cidr.addressWords("::"), [0, 0, 0, 0])
  })

  it("rejects what is not an address", () => {
    for (const input of ["", "1.2.3", "fe80::1%", "%eth0", "::1 ", "localhost", "1.2.3.4%eth0"]) {
      assert.strictEqual(Cidr.addressWords(input), undefined, input)
    }
  })

  it("accepts exactly the IP text that isIP accepts", () => {
    const random = prng(7)
    const pick = (items: ReadonlyArray<string>): string => items[random.int(items.length)] ?? ""
    const groups = ["0", "1", "00", "fff", "ffff", "FfFf", "0db8", "12345", "g", ""]
    const ipv4Parts = ["0", "1", "01", "255", "256", "99", "1000", ""]
    const alphabet = "0123456789abcdefABCDEF:.%z"
    let valid = 0
    for (let n = 0; n < 50_000; n++) {
      // Near-valid text: groups, an optional embedded IPv4 address, `::` here and there, an optional zone, a typo.
      const count = 1 + random.int(9)
      let text = Array.from({ length: count }, () => pick(groups)).join(":")
      if (random.int(3) === 0) text = text.replace(/:[^:]*$/, ":" + Array.from({ length: 3 + random.int(3) }, () => pick(ipv4Parts)).join("."))
      if (random.int(2) === 0) text = text.replace(/:/, "::")
      if (random.int(4) === 0) text = "::" + text
      if (random.int(4) === 0) text += "::"
      if (random.int(6) === 0) text += pick(["%eth0", "%1", "%", "%a b", "%x.y:z-1"])
      if (random.int(4) === 0) {
        const at = random.int(text.length + 1)
        text = text.slice(0, at) + pick([...alphabet]) + text.slice(at + random.int(2))
      }
      const accepted = Cidr.addressWords(text) !== undefined
      if (accepted) valid++
      assert.strictEqual(accepted, isIP(text) !== 0, text)
    }
    assert.isAbove(valid, 2_000)
  })
})

// ---------------------------------------------------------------------------
// Matching, against a brute-force reference
// ---------------------------------------------------------------------------

/** A range as the reference sees it: the family it applies to and its first and last address. */
interface Reference {
  readonly family: 4 | 6
  readonly first: bigint
  readonly last: bigint
}

const mappedBase = 0xffffn << 32n

const reference = (family: 4 | 6, address: bigint, prefix: number): Reference => {
  const bits = family === 4 ? 32 : 128
  const size = 1n << BigInt(bits - prefix)
  const first = address - (address % size)
  // Ranges inside ::ffff:0:0/96 are IPv4 ranges.
  if (family === 6 && prefix >= 96 && first >> 32n === 0xffffn) {
    return { family: 4, first: first - mappedBase, last: first - mappedBase + size - 1n }
  }
  return { family, first, last: first + size - 1n }
}

/** The reference answer: IPv4 clients (also IPv4-mapped ones) against IPv4 ranges, IPv6 clients against IPv6 ones. */
const referenceMatches = (ranges: ReadonlyArray<Reference>, family: 4 | 6, address: bigint): boolean => {
  const [clientFamily, client] = family === 6 && address >> 32n === 0xffffn ? [4, address - mappedBase] : [family, address]
  return ranges.some((range) => range.family === clientFamily && range.first <= client && client <= range.last)
}

const ipv4Text = (address: bigint): string =>
  [24n, 16n, 8n, 0n].map((shift) => String((address >> shift) & 0xffn)).join(".")

/** IPv6 text, full or compressed at random, so that both spellings are parsed. */
const ipv6Text = (address: bigint, compress: boolean): string => {
  const groups = Array.from({ length: 8 }, (_, i) => ((address >> BigInt(112 - 16 * i)) & 0xffffn).toString(16))
  const full = groups.join(":")
  return compress ? full.replace(/(^|:)0(:0)+(:|$)/, "::") : full
}

const randomBits = (random: ReturnType<typeof prng>, bits: number): bigint => {
  let value = 0n
  for (let i = 0; i < bits; i += 16) value = (value << 16n) | BigInt(random.int(65536))
  return value & ((1n << BigInt(bits)) - 1n)
}

describe("Cidr.matcher", () => {
  it("matches single hosts, ranges and nothing else", () => {
    const matcher = Cidr.matcher(ok(Cidr.parseList("10.0.0.0/8, 192.0.2.7, 2001:db8::/32, ::1")))
    for (const ip of ["10.0.0.0", "10.255.255.255", "10.1.2.3", "192.0.2.7", "2001:db8::", "2001:db8:ffff::1", "::1"]) {
      assert.isTrue(matcher.matches(ip), ip)
    }
    for (const ip of ["9.255.255.255", "11.0.0.0", "192.0.2.6", "192.0.2.8", "2001:db9::", "2001:db7::", "::2", "::"]) {
      assert.isFalse(matcher.matches(ip), ip)
    }
    assert.isFalse(matcher.isEmpty)
  })

  it("matches everything with /0 ranges", () => {
    const matcher = Cidr.matcher(ok(Cidr.parseList("0.0.0.0/0,::/0")))
    for (const ip of ["0.0.0.0", "255.255.255.255", "::", "ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff"]) {
      assert.isTrue(matcher.matches(ip), ip)
    }
  })

  it("matches IPv4-mapped clients as IPv4, and mapped ranges as IPv4 ranges", () => {
    const ipv4 = Cidr.matcher(ok(Cidr.parseList("10.0.0.0/8")))
    assert.isTrue(ipv4.matches("::ffff:10.1.2.3"))
    assert.isTrue(ipv4.matches("::ffff:a01:203"))
    assert.isTrue(ipv4.matches("0:0:0:0:0:ffff:10.1.2.3"))
    assert.isFalse(ipv4.matches("::ffff:11.1.2.3"))
    const mapped = Cidr.matcher(ok(Cidr.parseList("::ffff:10.0.0.0/104")))
    assert.isTrue(mapped.matches("10.1.2.3"))
    assert.isTrue(mapped.matches("::ffff:10.1.2.3"))
    assert.isFalse(mapped.matches("11.1.2.3"))
  })

  it("keeps IPv6 ranges for IPv6 clients: ::/0 does not match IPv4 clients", () => {
    const matcher = Cidr.matcher(ok(Cidr.parseList("::/0")))
    assert.isTrue(matcher.matches("2001:db8::1"))
    assert.isFalse(matcher.matches("10.1.2.3"))
    assert.isFalse(matcher.matches("::ffff:10.1.2.3"))
  })

  it("matches zoned link-local addresses by their address", () => {
    const matcher = Cidr.matcher(ok(Cidr.parseList("fe80::/10")))
    assert.isTrue(matcher.matches("fe80::1%eth0"))
    assert.isTrue(matcher.matches("fe80::1%2"))
  })

  it("matches nothing when empty", () => {
    const matcher = Cidr.matcher([])
    assert.isTrue(matcher.isEmpty)
    assert.isFalse(matcher.matches("10.0.0.1"))
    assert.isFalse(matcher.matches("::1"))
  })

  it("never throws, and matches no garbage", () => {
    const matcher = Cidr.matcher(ok(Cidr.parseList("0.0.0.0/0,::/0")))
    const garbage = [
      "",
      " ",
      "1.2.3",
      "1.2.3.4.5",
      "256.0.0.1",
      "01.2.3.4",
      "1.2.3.4 ",
      "::1::",
      ":::",
      "::ffff:1.2.3",
      "::ffff:1.2.3.4.5",
      "1:2:3:4:5:6:7:8:9",
      "12345::",
      "g::",
      "%",
      "::1%",
      "localhost",
      "\u0000",
      "1.2.3.4\n",
      "９.９.９.９",
      "x".repeat(10_000)
    ]
    for (const ip of garbage) assert.isFalse(matcher.matches(ip), JSON.stringify(ip))
    const random = prng(11)
    for (let n = 0; n < 20_000; n++) {
      const text = String.fromCharCode(...Array.from({ length: random.int(48) }, () => random.int(128)))
      assert.strictEqual(matcher.matches(text), isIP(text) !== 0, JSON.stringify(text))
    }
  })

  it("agrees with a brute-force reference over 10,000 overlapping and nested ranges", () => {
    const random = prng(42)
    const texts: Array<string> = []
    const references: Array<Reference> = []
    const add = (family: 4 | 6, address: bigint, prefix: number, text: string) => {
      texts.push(`${text}/${prefix}`)
      references.push(reference(family, address, prefix))
    }
    // A few IPv6 bases, so that IPv6 ranges overlap and nest rather than scatter.
    const bases = Array.from({ length: 8 }, () => randomBits(random, 128))
    while (texts.length < 10_000) {
      const kind = random.int(10)
      if (kind < 5) {
        // IPv4, often inside 10.0.0.0/8 so that ranges nest.
        const address = random.int(2) === 0 ? (10n << 24n) | randomBits(random, 24) : randomBits(random, 32)
        add(4, address, 8 + random.int(25), ipv4Text(address))
      } else if (kind < 9) {
        const base = bases[random.int(bases.length)] ?? 0n
        const address = base ^ randomBits(random, 16 + random.int(100))
        add(6, address, 16 + random.int(113), ipv6Text(address, random.int(2) === 0))
      } else {
        // IPv4-mapped IPv6.
        const ipv4 = (10n << 24n) | randomBits(random, 24)
        add(6, mappedBase | ipv4, 96 + 8 + random.int(25), `::ffff:${ipv4Text(ipv4)}`)
      }
    }
    const matcher = Cidr.matcher(ok(Cidr.parseList(texts)))

    let matched = 0
    for (let n = 0; n < 4_000; n++) {
      // Clients near range edges, inside ranges, and anywhere.
      const range = references[random.int(references.length)]
      if (range === undefined) continue
      const bits = range.family === 4 ? 32 : 128
      const modulus = 1n << BigInt(bits)
      const choice = random.int(5)
      const address = choice === 0
        ? (range.first - 1n + modulus) % modulus
        : choice === 1
        ? (range.last + 1n) % modulus
        : choice === 2
        ? range.first + (randomBits(random, bits) % (range.last - range.first + 1n))
        : choice === 3
        ? range.last
        : randomBits(random, bits)
      const expected = referenceMatches(references, range.family, address)
      if (expected) matched++
      const spellings = range.family === 4
        ? [ipv4Text(address), `::ffff:${ipv4Text(address)}`, ipv6Text(mappedBase | address, true)]
        : [ipv6Text(address, true), ipv6Text(address, false)]
      for (const ip of spellings) assert.strictEqual(matcher.matches(ip), expected, ip)
    }
    // The sample exercises both answers.
    assert.isAbove(matched, 1_000)
    assert.isBelow(matched, 3_500)
  })
})
