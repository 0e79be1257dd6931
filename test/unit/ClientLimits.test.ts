import { assert, describe, it } from "@effect/vitest"
import * as ClientLimits from "../../src/domain/ClientLimits.ts"

const noLimits = { maxPerIp: undefined, rate: undefined }

/** The verdicts of `count` connections from `ip` at `nowMs`, each left open. */
const admitMany = (limits: ClientLimits.ClientLimits, ip: string, count: number, nowMs = 0) =>
  Array.from({ length: count }, () => limits.admit(ip, nowMs))

/** A distinct address for each `n`: IPv4 for even ones, IPv6 for odd ones. */
const addressOf = (n: number): string =>
  n % 2 === 0
    ? `10.${(n >>> 16) & 0xff}.${(n >>> 8) & 0xff}.${n & 0xff}`
    : `2001:db8:${(n >>> 16).toString(16)}::${(n & 0xffff).toString(16)}`

describe("ClientLimits: connections per IP", () => {
  it("refuses a connection beyond N open from one address, and counts addresses apart", () => {
    const limits = ClientLimits.make({ maxPerIp: 2, rate: undefined })
    assert.deepStrictEqual(admitMany(limits, "192.0.2.1", 3), ["ok", "ok", "per_ip_limit"])
    assert.deepStrictEqual(admitMany(limits, "192.0.2.2", 3), ["ok", "ok", "per_ip_limit"])
    assert.deepStrictEqual(admitMany(limits, "2001:db8::1", 3), ["ok", "ok", "per_ip_limit"])
  })

  it("admits again once a connection is released", () => {
    const limits = ClientLimits.make({ maxPerIp: 1, rate: undefined })
    assert.strictEqual(limits.admit("192.0.2.1", 0), "ok")
    assert.strictEqual(limits.admit("192.0.2.1", 0), "per_ip_limit")
    limits.release("192.0.2.1")
    assert.strictEqual(limits.admit("192.0.2.1", 0), "ok")
    assert.strictEqual(limits.admit("192.0.2.1", 0), "per_ip_limit")
  })

  it("ignores releases of addresses with nothing open, and never counts below zero", () => {
    const limits = ClientLimits.make({ maxPerIp: 1, rate: undefined })
    limits.release("192.0.2.9")
    assert.strictEqual(limits.admit("192.0.2.1", 0), "ok")
    limits.release("192.0.2.1")
    limits.release("192.0.2.1")
    assert.deepStrictEqual(admitMany(limits, "192.0.2.1", 2), ["ok", "per_ip_limit"])
  })

  it("drops an address's entry at its last release when no rate is set", () => {
    const limits = ClientLimits.make({ maxPerIp: 5, rate: undefined })
    admitMany(limits, "192.0.2.1", 3)
    assert.strictEqual(limits.tracked(), 1)
    for (let i = 0; i < 3; i++) limits.release("192.0.2.1")
    assert.strictEqual(limits.tracked(), 0)
  })

  it("counts an IPv4-mapped client as its IPv4 address, and any spelling of an IPv6 address as one", () => {
    const limits = ClientLimits.make({ maxPerIp: 1, rate: undefined })
    assert.strictEqual(limits.admit("10.0.0.1", 0), "ok")
    assert.strictEqual(limits.admit("::ffff:10.0.0.1", 0), "per_ip_limit")
    assert.strictEqual(limits.admit("::ffff:a00:1", 0), "per_ip_limit")
    limits.release("::ffff:10.0.0.1")
    assert.strictEqual(limits.admit("10.0.0.1", 0), "ok")
    assert.strictEqual(limits.admit("2001:db8::1", 0), "ok")
    assert.strictEqual(limits.admit("2001:DB8:0:0:0:0:0:1", 0), "per_ip_limit")
  })

  it("admits text that is no IP address, uncounted", () => {
    const limits = ClientLimits.make({ maxPerIp: 1, rate: { count: 1, perMs: 1000 } })
    assert.deepStrictEqual(admitMany(limits, "not an address", 3), ["ok", "ok", "ok"])
    limits.release("not an address")
    assert.strictEqual(limits.tracked(), 0)
  })
})

describe("ClientLimits: connection rate per IP", () => {
  it("allows a burst of N, then one more per DURATION/N as the bucket refills", () => {
    const limits = ClientLimits.make({ maxPerIp: undefined, rate: { count: 2, perMs: 1000 } })
    assert.deepStrictEqual(admitMany(limits, "192.0.2.1", 3, 0), ["ok", "ok", "rate_limit"])
    assert.strictEqual(limits.admit("192.0.2.1", 499), "rate_limit")
    assert.strictEqual(limits.admit("192.0.2.1", 500), "ok")
    assert.strictEqual(limits.admit("192.0.2.1", 500), "rate_limit")
    assert.strictEqual(limits.admit("192.0.2.1", 999), "rate_limit")
    assert.strictEqual(limits.admit("192.0.2.1", 1000), "ok")
    // A long pause refills the bucket, up to N and no more.
    assert.deepStrictEqual(admitMany(limits, "192.0.2.1", 3, 60_000), ["ok", "ok", "rate_limit"])
    // Other addresses have their own buckets.
    assert.deepStrictEqual(admitMany(limits, "192.0.2.2", 3, 60_000), ["ok", "ok", "rate_limit"])
  })

  it("does not give tokens back on release", () => {
    const limits = ClientLimits.make({ maxPerIp: undefined, rate: { count: 1, perMs: 1000 } })
    assert.strictEqual(limits.admit("192.0.2.1", 0), "ok")
    limits.release("192.0.2.1")
    assert.strictEqual(limits.admit("192.0.2.1", 10), "rate_limit")
    assert.strictEqual(limits.admit("192.0.2.1", 1000), "ok")
  })

  it("allows the whole burst when DURATION/N is not a whole number", () => {
    const limits = ClientLimits.make({ maxPerIp: undefined, rate: { count: 3, perMs: 1000 } })
    const now = 1_750_000_000_000
    assert.deepStrictEqual(admitMany(limits, "192.0.2.1", 4, now), ["ok", "ok", "ok", "rate_limit"])
    assert.strictEqual(limits.admit("192.0.2.1", now + 333), "rate_limit")
    assert.strictEqual(limits.admit("192.0.2.1", now + 334), "ok")
    // Refilled in many small steps, the bucket is full again: a whole burst.
    for (let t = now + 335; t < now + 2000; t += 7) limits.admit("192.0.2.9", t)
    assert.deepStrictEqual(admitMany(limits, "192.0.2.1", 4, now + 5000), ["ok", "ok", "ok", "rate_limit"])
  })

  it("takes no token when the clock goes back, and refills from the latest time seen", () => {
    const limits = ClientLimits.make({ maxPerIp: undefined, rate: { count: 1, perMs: 1000 } })
    assert.strictEqual(limits.admit("192.0.2.1", 5000), "ok")
    assert.strictEqual(limits.admit("192.0.2.1", 1000), "rate_limit")
    assert.strictEqual(limits.admit("192.0.2.1", 5999), "rate_limit")
    assert.strictEqual(limits.admit("192.0.2.1", 6000), "ok")
  })
})

describe("ClientLimits: both limits", () => {
  it("takes a token only for admitted connections", () => {
    const limits = ClientLimits.make({ maxPerIp: 1, rate: { count: 2, perMs: 1000 } })
    assert.strictEqual(limits.admit("192.0.2.1", 0), "ok")
    assert.strictEqual(limits.admit("192.0.2.1", 0), "per_ip_limit")
    assert.strictEqual(limits.admit("192.0.2.1", 0), "per_ip_limit")
    limits.release("192.0.2.1")
    assert.strictEqual(limits.admit("192.0.2.1", 0), "ok")
    limits.release("192.0.2.1")
    assert.strictEqual(limits.admit("192.0.2.1", 0), "rate_limit")
    assert.strictEqual(limits.admit("192.0.2.1", 500), "ok")
    assert.strictEqual(limits.admit("192.0.2.1", 10_000), "per_ip_limit")
  })
})

describe("ClientLimits: reload", () => {
  it("applies new limits to new connections and keeps the open counts", () => {
    const limits = ClientLimits.make({ maxPerIp: 2, rate: undefined })
    assert.deepStrictEqual(admitMany(limits, "192.0.2.1", 3), ["ok", "ok", "per_ip_limit"])
    limits.update({ maxPerIp: 3, rate: undefined })
    assert.deepStrictEqual(admitMany(limits, "192.0.2.1", 2), ["ok", "per_ip_limit"])
    limits.update({ maxPerIp: 1, rate: undefined })
    limits.release("192.0.2.1")
    limits.release("192.0.2.1")
    assert.strictEqual(limits.admit("192.0.2.1", 0), "per_ip_limit")
    limits.release("192.0.2.1")
    assert.deepStrictEqual(admitMany(limits, "192.0.2.1", 2), ["ok", "per_ip_limit"])
  })

  it("counts connections while no limit is set, so a reload that sets one sees them", () => {
    const limits = ClientLimits.make(noLimits)
    assert.deepStrictEqual(admitMany(limits, "192.0.2.1", 3), ["ok", "ok", "ok"])
    limits.update({ maxPerIp: 3, rate: undefined })
    assert.strictEqual(limits.admit("192.0.2.1", 0), "per_ip_limit")
    limits.release("192.0.2.1")
    assert.deepStrictEqual(admitMany(limits, "192.0.2.1", 2), ["ok", "per_ip_limit"])
  })

  it("keeps the tokens spent when the rate changes", () => {
    const limits = ClientLimits.make({ maxPerIp: undefined, rate: { count: 2, perMs: 1000 } })
    assert.deepStrictEqual(admitMany(limits, "192.0.2.1", 3), ["ok", "ok", "rate_limit"])
    limits.update({ maxPerIp: undefined, rate: { count: 3, perMs: 1000 } })
    assert.deepStrictEqual(admitMany(limits, "192.0.2.1", 2), ["ok", "rate_limit"])
    limits.update({ maxPerIp: undefined, rate: { count: 1, perMs: 60_000 } })
    assert.strictEqual(limits.admit("192.0.2.1", 59_999), "rate_limit")
    limits.update(noLimits)
    assert.deepStrictEqual(admitMany(limits, "192.0.2.1", 2), ["ok", "ok"])
  })
})

describe("ClientLimits: bounded memory", () => {
  it("holds its memory steady under a flood of 100,000 distinct addresses, and keeps working", () => {
    const buffer = new ArrayBuffer(ClientLimits.byteLength())
    const size = buffer.byteLength
    const limits = ClientLimits.make({ maxPerIp: 2, rate: { count: 5, perMs: 1000 }, buffer })
    // Residents hold connections through the flood.
    const residents = Array.from({ length: 200 }, (_, i) => `192.0.2.${i}`)
    for (const ip of residents) assert.deepStrictEqual(admitMany(limits, ip, 2), ["ok", "ok"])

    // All within one instant, so that no bucket refills and the table fills up.
    for (let n = 0; n < 100_000; n++) {
      const ip = addressOf(n)
      assert.strictEqual(limits.admit(ip, 0), "ok", ip)
      limits.release(ip)
      assert.isAtMost(limits.tracked(), ClientLimits.defaultMaxEntries)
    }
    assert.strictEqual(limits.tracked(), ClientLimits.defaultMaxEntries)
    assert.strictEqual(buffer.byteLength, size)

    // The residents' counts survived: full, then one more after a release.
    for (const ip of residents) {
      assert.strictEqual(limits.admit(ip, 1000), "per_ip_limit", ip)
      limits.release(ip)
      assert.strictEqual(limits.admit(ip, 1000), "ok", ip)
    }
    // New and flooded addresses are found again after all the moves.
    for (let n = 0; n < 1000; n++) {
      const ip = addressOf(200_000 + n)
      assert.deepStrictEqual(admitMany(limits, ip, 3, 2000), ["ok", "ok", "per_ip_limit"], ip)
    }
    for (let n = 99_000; n < 100_000; n++) {
      const ip = addressOf(n)
      assert.deepStrictEqual(admitMany(limits, ip, 3, 2000), ["ok", "ok", "per_ip_limit"], ip)
    }
  })

  it("gives the table back when no rate is set and every flooded connection closes", () => {
    const limits = ClientLimits.make({ maxPerIp: 10, rate: undefined, maxEntries: 1024 })
    for (let n = 0; n < 100_000; n++) {
      assert.strictEqual(limits.admit(addressOf(n), 0), "ok")
      limits.release(addressOf(n))
    }
    assert.strictEqual(limits.tracked(), 0)
  })

  it("reclaims idle entries to make room for new addresses", () => {
    const limits = ClientLimits.make({ maxPerIp: undefined, rate: { count: 1, perMs: 1000 }, maxEntries: 4 })
    for (let n = 0; n < 4; n++) {
      assert.strictEqual(limits.admit(addressOf(n), 0), "ok")
      limits.release(addressOf(n))
    }
    assert.strictEqual(limits.tracked(), 4)
    // A second later every bucket is full: the entries are idle.
    for (let n = 4; n < 8; n++) assert.strictEqual(limits.admit(addressOf(n), 1000), "ok")
    assert.strictEqual(limits.tracked(), 4)
    for (let n = 4; n < 8; n++) assert.strictEqual(limits.admit(addressOf(n), 1000), "rate_limit")
  })

  it("when full of refilling entries, lets a new address take the place of one not seen lately", () => {
    const limits = ClientLimits.make({ maxPerIp: undefined, rate: { count: 1, perMs: 1000 }, maxEntries: 2 })
    for (const ip of ["192.0.2.1", "192.0.2.2"]) {
      assert.strictEqual(limits.admit(ip, 0), "ok")
      limits.release(ip)
    }
    assert.strictEqual(limits.admit("192.0.2.3", 0), "ok")
    assert.strictEqual(limits.tracked(), 2)
    // The newcomer's own bucket is tracked.
    assert.strictEqual(limits.admit("192.0.2.3", 0), "rate_limit")
  })

  it("refuses new addresses when every entry has open connections", () => {
    const limits = ClientLimits.make({ maxPerIp: 4, rate: undefined, maxEntries: 8 })
    for (let n = 0; n < 8; n++) assert.strictEqual(limits.admit(addressOf(n), 0), "ok")
    assert.strictEqual(limits.admit(addressOf(8), 0), "per_ip_limit")
    assert.strictEqual(limits.admit(addressOf(9), 0), "per_ip_limit")
    // Addresses already in the table still get their own limit.
    assert.deepStrictEqual(admitMany(limits, addressOf(0), 4), ["ok", "ok", "ok", "per_ip_limit"])
    limits.release(addressOf(3))
    assert.strictEqual(limits.admit(addressOf(8), 0), "ok")
    assert.strictEqual(limits.admit(addressOf(9), 0), "per_ip_limit")
  })

  it("admits new addresses uncounted into a full table when no limit is set", () => {
    const limits = ClientLimits.make({ ...noLimits, maxEntries: 2 })
    assert.deepStrictEqual([0, 1, 2].map((n) => limits.admit(addressOf(n), 0)), ["ok", "ok", "ok"])
    assert.strictEqual(limits.tracked(), 2)
  })
})

describe("ClientLimits: memory", () => {
  it("works over a given buffer, and a second table over the same buffer sees the same state", () => {
    const buffer = new SharedArrayBuffer(ClientLimits.byteLength(16))
    const first = ClientLimits.make({ maxPerIp: 2, rate: undefined, maxEntries: 16, buffer })
    assert.deepStrictEqual(admitMany(first, "192.0.2.1", 2), ["ok", "ok"])
    const second = ClientLimits.make({ maxPerIp: 2, rate: undefined, maxEntries: 16, buffer })
    assert.strictEqual(second.admit("192.0.2.1", 0), "per_ip_limit")
    second.release("192.0.2.1")
    assert.strictEqual(first.admit("192.0.2.1", 0), "ok")
  })

  it("rejects a buffer of the wrong size and a capacity that is not a positive integer", () => {
    assert.throws(() => ClientLimits.make({ ...noLimits, buffer: new ArrayBuffer(64) }), RangeError)
    assert.throws(() => ClientLimits.make({ ...noLimits, maxEntries: 0 }), RangeError)
    assert.throws(() => ClientLimits.make({ ...noLimits, maxEntries: 1.5 }), RangeError)
  })
})

describe("ClientLimits: against a reference model", () => {
  /**
   * Random admits, releases and time steps over 64 addresses in a table of 64,
   * crowded with colliding addresses, so that entries are inserted, reused,
   * removed and shifted back often; a plain Map says what the answers must be.
   */
  const check = (rate: ClientLimits.Limits["rate"]) => {
    const limits = ClientLimits.make({ maxPerIp: 2, rate, maxEntries: 64 })
    const model = new Map<string, { open: number; spent: number; since: number }>()
    const pool = Array.from({ length: 64 }, (_, n) => addressOf(n * 7919))
    let seed = 1
    const random = (below: number): number => {
      seed = (Math.imul(seed, 48271) >>> 0) % 2147483647
      return seed % below
    }
    let now = 0
    for (let step = 0; step < 50_000; step++) {
      now += random(3) * 10
      const ip = pool[random(pool.length)] ?? ""
      const entry = model.get(ip) ?? { open: 0, spent: 0, since: now }
      const spent = rate === undefined ? 0 : Math.max(0, entry.spent - (now - entry.since) * rate.count / rate.perMs)
      // Admits a little more often than releases, so that most addresses hold connections.
      if (random(5) < 3) {
        const expected = entry.open >= 2
          ? "per_ip_limit"
          : rate !== undefined && spent + 1 > rate.count + 1e-9
          ? "rate_limit"
          : "ok"
        assert.strictEqual(limits.admit(ip, now), expected, `step ${step}`)
        if (expected === "ok") model.set(ip, { open: entry.open + 1, spent: spent + 1, since: now })
      } else {
        limits.release(ip)
        model.set(ip, { ...entry, open: Math.max(0, entry.open - 1) })
      }
      assert.isAtMost(limits.tracked(), 64)
    }
    if (rate === undefined) {
      assert.strictEqual(limits.tracked(), [...model.values()].filter(({ open }) => open > 0).length)
    }
  }

  it("agrees with a plain Map with a rate set", () => check({ count: 3, perMs: 300 }))

  it("agrees with a plain Map without a rate, entries removed at their last release", () => check(undefined))
})

describe("ClientLimits shared by threads", () => {
  it("threads count in one table, and what a thread that died had open is released", () => {
    const buffer = new SharedArrayBuffer(ClientLimits.byteLength(1024, 2))
    const options = { maxPerIp: 3, rate: undefined, maxEntries: 1024, buffer, threads: 2 }
    const first = ClientLimits.make({ ...options, thread: 1 })
    const second = ClientLimits.make({ ...options, thread: 2 })
    assert.deepStrictEqual(admitMany(first, "10.0.0.1", 2), ["ok", "ok"])
    assert.deepStrictEqual(admitMany(second, "10.0.0.1", 2), ["ok", "per_ip_limit"])
    // 200 more addresses, one connection each from thread 2, some of them closed again.
    for (let n = 0; n < 200; n++) assert.strictEqual(second.admit(addressOf(n), 0), "ok")
    for (let n = 0; n < 200; n += 2) second.release(addressOf(n))
    assert.strictEqual(first.tracked(), 101)
    // A release by a thread that holds none of the address's connections changes nothing.
    first.release(addressOf(1))
    assert.strictEqual(second.tracked(), 101)
    // Thread 2 dies: its connections are released, thread 1's stay.
    first.releaseThread(2)
    assert.strictEqual(first.tracked(), 1)
    assert.deepStrictEqual(admitMany(first, "10.0.0.1", 2), ["ok", "per_ip_limit"])
  })
})
