import { assert, describe, it } from "@effect/vitest"
import { Effect, Layer, Random } from "effect"
import { hash32, lookup, makeRing, maxPoints, pointsPerWeight, type Ring } from "../../src/domain/balancing/ConsistentHash.ts"
import type { BackendView } from "../../src/domain/balancing/Strategy.ts"
import type { Backend } from "../../src/domain/Config.ts"
import type { HealthState } from "../../src/domain/Health.ts"
import * as BalancerLive from "../../src/layers/BalancerLive.ts"
import { Balancer } from "../../src/services/Balancer.ts"
import { BackendRegistry } from "../../src/services/BackendRegistry.ts"
import { backend, registryOf, setState } from "./fixtures.ts"

/** A backend as the ring sees it: eligible while HEALTHY. */
const status = (x: Backend, state: HealthState = "HEALTHY"): BackendView => ({
  backend: x,
  weight: x.weight,
  activeConnections: 0,
  eligible: state === "HEALTHY"
})

/** Five equal backends. */
const five = [1, 2, 3, 4, 5].map((i) => backend(`10.0.0.${i}`, 8080))
/** Four backends of weights 1, 1, 2 and 4. */
const weighted = [1, 1, 2, 4].map((weight, i) => backend(`10.1.0.${i + 1}`, 9000, weight))

/** 20,000 distinct client IPs that differ in their low bytes. */
const sequentialIps = Array.from({ length: 20_000 }, (_, i) => `10.${(i >> 8) & 255}.${i & 255}.1`)
/** 20,000 random-looking client IPs (a fixed linear congruential sequence: distinct over its period). */
const scatteredIps = (() => {
  let x = 12345
  return Array.from({ length: 20_000 }, () => {
    x = (Math.imul(x, 1664525) + 1013904223) >>> 0
    return `${x >>> 24}.${(x >>> 16) & 255}.${(x >>> 8) & 255}.${x & 255}`
  })
})()
const keySets = { sequential: sequentialIps, scattered: scatteredIps }

const addresses = (statuses: ReadonlyArray<BackendView>) => statuses.map((s) => s.backend.address)

/** The first backend for each key: one pure lookup per key. */
const firstOf = (ring: Ring<BackendView>, keys: ReadonlyArray<string>): Array<string> =>
  keys.map((key) => {
    const first = lookup(ring, key)[0]
    if (first === undefined) return assert.fail(`no backend for ${key}`)
    return first.backend.address
  })

const counts = (picks: ReadonlyArray<string>) => {
  const result = new Map<string, number>()
  for (const pick of picks) result.set(pick, (result.get(pick) ?? 0) + 1)
  return result
}

/** Asserts each backend's share of `picks` is within 10% (relative) of its share of the total weight. */
const assertWeightShares = (picks: ReadonlyArray<string>, backends: ReadonlyArray<Backend>) => {
  const total = backends.reduce((sum, x) => sum + x.weight, 0)
  const byAddress = counts(picks)
  assert.strictEqual([...byAddress.values()].reduce((sum, n) => sum + n, 0), picks.length)
  for (const x of backends) {
    const actual = (byAddress.get(x.address) ?? 0) / picks.length
    const expected = x.weight / total
    assert.isTrue(
      Math.abs(actual - expected) <= 0.1 * expected,
      `${x.address} (weight ${x.weight}): share ${actual} is not within 10% of ${expected}`
    )
  }
}

/**
 * Compares the candidates for each key before and after `removed` left (or
 * turned UNHEALTHY): asserts that a key keeps its backend unless that was
 * `removed`, that the others keep their order, so a moved key goes to what
 * was its second candidate, and that about 1/N of the keys moved.
 */
const assertMinimalMovement = (
  before: ReadonlyArray<ReadonlyArray<string>>,
  after: ReadonlyArray<ReadonlyArray<string>>,
  removed: string,
  n: number
) => {
  assert.strictEqual(after.length, before.length)
  let moved = 0
  for (let i = 0; i < before.length; i++) {
    const was = before[i] ?? []
    const now = after[i] ?? []
    assert.deepStrictEqual(now, was.filter((x) => x !== removed), `key #${i}`)
    if (was[0] === removed) {
      moved++
      assert.strictEqual(now[0], was[1], `key #${i} goes to its second candidate`)
    } else {
      assert.strictEqual(now[0], was[0], `key #${i} keeps its backend`)
    }
  }
  const fraction = moved / before.length
  assert.isTrue(fraction >= 0.5 / n && fraction <= 1.5 / n, `moved fraction ${fraction} is not about 1/${n}`)
}

describe("ConsistentHash (pure)", () => {
  it("hash32 is a deterministic unsigned 32-bit hash that spreads nearby keys", () => {
    for (const key of ["", "10.0.0.1", "::1", "2001:db8::1", "192.0.2.255"]) {
      const h = hash32(key)
      assert.strictEqual(h, hash32(key))
      assert.isTrue(Number.isInteger(h) && h >= 0 && h <= 0xffffffff, `${key}: ${h}`)
    }
    assert.notStrictEqual(hash32("10.0.0.1"), hash32("10.0.0.2"))
    // 20,000 adjacent keys fill 16 equal slices of the 32-bit range evenly
    const buckets = new Array<number>(16).fill(0)
    for (const key of sequentialIps) {
      const bucket = hash32(key) >>> 28
      buckets[bucket] = (buckets[bucket] ?? 0) + 1
    }
    for (const n of buckets) assert.isTrue(Math.abs(n - 1250) <= 125, `bucket of ${n}, not about 1250`)
    assert.isAtLeast(new Set(sequentialIps.map(hash32)).size, 19_990)
  })

  it("makeRing gives each backend weight x pointsPerWeight sorted points", () => {
    const ring = makeRing(weighted.map((x) => status(x)))
    assert.strictEqual(ring.points.length, 8 * pointsPerWeight)
    assert.strictEqual(ring.owners.length, ring.points.length)
    for (let i = 1; i < ring.points.length; i++) {
      assert.isTrue((ring.points[i] ?? 0) >= (ring.points[i - 1] ?? 0), `point ${i} out of order`)
    }
    const owned = counts(Array.from(ring.owners, (owner) => ring.backends[owner]?.backend.address ?? "none"))
    weighted.forEach((x) => assert.strictEqual(owned.get(x.address), x.weight * pointsPerWeight, x.address))
    assert.strictEqual(owned.size, weighted.length)
  })

  it("lookup takes the owner of the first point at or after the key's hash, wrapping around", () => {
    const ring = makeRing(five.map((x) => status(x)))
    for (const key of sequentialIps.slice(0, 2000)) {
      const h = hash32(key)
      let index = ring.points.findIndex((point) => point >= h)
      if (index === -1) index = 0
      const owner = ring.backends[ring.owners[index] ?? -1]
      assert.strictEqual(lookup(ring, key)[0], owner, key)
    }
  })

  it("lookup lists every HEALTHY backend once, and none of an empty ring", () => {
    const statuses = five.map((x, i) => status(x, i === 1 || i === 3 ? "UNHEALTHY" : "HEALTHY"))
    const ring = makeRing(statuses)
    for (const key of scatteredIps.slice(0, 2000)) {
      const found = addresses(lookup(ring, key))
      assert.strictEqual(found.length, 3)
      assert.sameMembers(found, [0, 2, 4].map((i) => five[i]?.address ?? ""))
    }
    assert.deepStrictEqual(lookup(makeRing([]), "10.0.0.1"), [])
    assert.deepStrictEqual(lookup(makeRing(five.map((x) => status(x, "UNHEALTHY"))), "10.0.0.1"), [])
  })

  it("the same key always gets the same backend, across calls and ring rebuilds in any order", () => {
    const keys = scatteredIps.slice(0, 5000)
    const ring = makeRing(five.map((x) => status(x)))
    const first = keys.map((key) => addresses(lookup(ring, key)))
    assert.deepStrictEqual(keys.map((key) => addresses(lookup(ring, key))), first)
    // a new ring of fresh statuses, and one of the backends in another order
    const rebuilt = makeRing(five.map((x) => status(x)))
    assert.deepStrictEqual(keys.map((key) => addresses(lookup(rebuilt, key))), first)
    const reversed = makeRing([...five].reverse().map((x) => status(x)))
    assert.deepStrictEqual(keys.map((key) => addresses(lookup(reversed, key))), first)
  })

  for (const [name, keys] of Object.entries(keySets)) {
    it(`spreads ${name} keys by weight: 1, 1, 2, 4 within 10%`, () => {
      assertWeightShares(firstOf(makeRing(weighted.map((x) => status(x))), keys), weighted)
    })

    it(`spreads ${name} keys over 5 equal backends within 10%`, () => {
      assertWeightShares(firstOf(makeRing(five.map((x) => status(x))), keys), five)
    })
  }

  for (const gone of five) {
    it(`removing ${gone.address} from the ring moves only its keys, about 1/5, and they come back`, () => {
      const keys = sequentialIps
      const full = makeRing(five.map((x) => status(x)))
      const before = keys.map((key) => addresses(lookup(full, key)))
      const without = makeRing(five.filter((x) => x !== gone).map((x) => status(x)))
      const after = keys.map((key) => addresses(lookup(without, key)))
      assertMinimalMovement(before, after, gone.address, five.length)
      const back = makeRing(five.map((x) => status(x)))
      assert.deepStrictEqual(keys.map((key) => addresses(lookup(back, key))), before)
    })
  }

  it("an UNHEALTHY backend on the ring hands its keys, and only them, to the next backend on the ring", () => {
    const keys = scatteredIps
    const gone = five[2]?.address ?? ""
    const healthy = makeRing(five.map((x) => status(x)))
    const before = keys.map((key) => addresses(lookup(healthy, key)))
    const sick = makeRing(five.map((x) => status(x, x.address === gone ? "UNHEALTHY" : "HEALTHY")))
    assertMinimalMovement(before, keys.map((key) => addresses(lookup(sick, key))), gone, five.length)
  })

  it("removing a heavy backend moves about its weight share of the keys", () => {
    const keys = sequentialIps
    const heavy = weighted[3]
    if (heavy === undefined) return assert.fail("no heavy backend")
    const full = makeRing(weighted.map((x) => status(x)))
    const without = makeRing(weighted.filter((x) => x !== heavy).map((x) => status(x)))
    const before = keys.map((key) => addresses(lookup(full, key)))
    const after = keys.map((key) => addresses(lookup(without, key)))
    // weight 4 of 8: half the keys move; assertMinimalMovement's "1/N" with N = 2
    assertMinimalMovement(before, after, heavy.address, 2)
  })
})

/** A hash balancer over a real registry of `backends`, with the registry exposed to the test. */
const env = (backends: ReadonlyArray<Backend>) =>
  BalancerLive.make("hash").pipe(Layer.provideMerge(registryOf(backends)))

/** The candidates (addresses) the balancer offers each of `ips`, from the given port. */
const candidatesFor = (ips: ReadonlyArray<string>, port = 40000) =>
  Effect.gen(function*() {
    const balancer = yield* Balancer
    const result: Array<ReadonlyArray<string>> = []
    for (const ip of ips) result.push((yield* balancer.candidates({ ip, port })).map((x) => x.address))
    return result
  })

const firsts = (lists: ReadonlyArray<ReadonlyArray<string>>) => lists.map((list) => list[0] ?? "none")

describe("hash balancer", () => {
  it.effect("gives the same client IP the same backend on every call, from any port", () =>
    Effect.gen(function*() {
      const ips = scatteredIps.slice(0, 1000)
      const first = yield* candidatesFor(ips, 40000)
      for (let round = 1; round <= 5; round++) {
        assert.deepStrictEqual(yield* candidatesFor(ips, 40000 + round * 997), first)
      }
      // and it is the pure ring's answer
      const ring = makeRing(five.map((x) => status(x)))
      assert.deepStrictEqual(first, ips.map((ip) => addresses(lookup(ring, ip))))
    }).pipe(Effect.provide(env(five))))

  it.effect("does not depend on the random seed or on the balancer instance", () =>
    Effect.gen(function*() {
      const ips = sequentialIps.slice(0, 1000)
      const one = yield* candidatesFor(ips).pipe(Random.withSeed("one"), Effect.provide(env(five)))
      const two = yield* candidatesFor(ips).pipe(Random.withSeed("two"), Effect.provide(env(five)))
      assert.deepStrictEqual(two, one)
    }))

  it.effect("keeps every mapping across a ring rebuild (a health change elsewhere, and back)", () =>
    Effect.gen(function*() {
      const ips = scatteredIps.slice(0, 5000)
      const before = yield* candidatesFor(ips)
      const other = five[4]?.address ?? ""
      yield* setState(other, "UNHEALTHY")
      const during = yield* candidatesFor(ips)
      for (let i = 0; i < ips.length; i++) {
        const was = before[i] ?? []
        if (was[0] !== other) assert.strictEqual(during[i]?.[0], was[0], ips[i])
      }
      yield* setState(other, "HEALTHY")
      assert.deepStrictEqual(yield* candidatesFor(ips), before)
    }).pipe(Effect.provide(env(five))))

  it.effect("spreads 20,000 clients by weight: 1, 1, 2, 4 within 10%", () =>
    Effect.gen(function*() {
      assertWeightShares(firsts(yield* candidatesFor(sequentialIps)), weighted)
    }).pipe(Effect.provide(env(weighted))))

  it.effect("spreads 20,000 clients over 5 equal backends within 10%", () =>
    Effect.gen(function*() {
      assertWeightShares(firsts(yield* candidatesFor(scatteredIps)), five)
    }).pipe(Effect.provide(env(five))))

  it.effect("a backend turning UNHEALTHY moves only its clients, about 1/5, to their next backend; they return with it", () =>
    Effect.gen(function*() {
      const ips = sequentialIps
      const before = yield* candidatesFor(ips)
      for (const gone of five) {
        yield* setState(gone.address, "UNHEALTHY")
        assertMinimalMovement(before, yield* candidatesFor(ips), gone.address, five.length)
        yield* setState(gone.address, "HEALTHY")
        assert.deepStrictEqual(yield* candidatesFor(ips), before, `after ${gone.address} returned`)
      }
    }).pipe(Effect.provide(env(five))))

  it.effect("a backend removed from the registry moves only its clients, about 1/5; they return when it is added back", () =>
    Effect.gen(function*() {
      const registry = yield* BackendRegistry
      const ips = scatteredIps
      const before = yield* candidatesFor(ips)
      const gone = five[1]?.address ?? ""
      yield* registry.update(five.filter((x) => x.address !== gone))
      assertMinimalMovement(before, yield* candidatesFor(ips), gone, five.length)
      yield* registry.update(five)
      assert.deepStrictEqual(yield* candidatesFor(ips), before)
    }).pipe(Effect.provide(env(five))))

  it.effect("a re-weighted backend takes its new share, and only from the others", () =>
    Effect.gen(function*() {
      const registry = yield* BackendRegistry
      const ips = sequentialIps
      const before = firsts(yield* candidatesFor(ips))
      const grown = five.map((x, i) => i === 0 ? { ...x, weight: 5 } : x)
      const heavy = grown[0]?.address ?? ""
      yield* registry.update(grown)
      const after = firsts(yield* candidatesFor(ips))
      assertWeightShares(after, grown)
      for (let i = 0; i < ips.length; i++) {
        if (after[i] !== before[i]) assert.strictEqual(after[i], heavy, `key #${i} moved to another backend`)
      }
    }).pipe(Effect.provide(env(five))))

  it.effect("when a client's backend is UNHEALTHY, the first candidate is the one that was second", () =>
    Effect.gen(function*() {
      const ip = "203.0.113.77"
      const [before] = yield* candidatesFor([ip])
      const [first, second, third, fourth, fifth] = before ?? []
      if (first === undefined || second === undefined || third === undefined || fourth === undefined || fifth === undefined) {
        return assert.fail(`not five candidates: ${before}`)
      }
      assert.sameMembers([first, second, third, fourth, fifth], five.map((x) => x.address))
      // take its backends away one by one: each time the next on the ring steps up
      const ordered = [first, second, third, fourth, fifth]
      for (let i = 0; i < 4; i++) {
        yield* setState(ordered[i] ?? "", "UNHEALTHY")
        assert.deepStrictEqual(yield* candidatesFor([ip]), [ordered.slice(i + 1)])
      }
      yield* setState(fifth, "UNHEALTHY")
      assert.deepStrictEqual(yield* candidatesFor([ip]), [[]])
      // whichever come back, they are offered in their ring order: its own backend first
      yield* setState(third, "HEALTHY")
      assert.deepStrictEqual(yield* candidatesFor([ip]), [[third]])
      yield* setState(first, "HEALTHY")
      assert.deepStrictEqual(yield* candidatesFor([ip]), [[first, third]])
    }).pipe(Effect.provide(env(five))))

describe("ring size", () => {
  it("stays within maxPoints for huge weights, keeping the shares", () => {
    const heavy = backend("10.9.0.1", 80, 1_000_000)
    const light = backend("10.9.0.2", 80, 1_000)
    const ring = makeRing([status(heavy), status(light)])
    assert.isAtMost(ring.points.length, maxPoints + 2)
    const lightPoints = ring.owners.filter((owner) => owner === 1).length
    assert.approximately(lightPoints / ring.points.length, 1_000 / 1_001_000, 0.0005)
    // Every backend keeps at least one point.
    const ring2 = makeRing([status(heavy), status(backend("10.9.0.3", 80, 1))])
    assert.isAtLeast(ring2.owners.filter((owner) => owner === 1).length, 1)
  })
})
})
