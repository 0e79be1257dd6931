import { assert, describe, it } from "@effect/vitest"
import { Effect, Layer, Random } from "effect"
import { powerOfTwoChoices } from "../../src/domain/balancing/Random.ts"
import { type BackendView, load, weightedShuffle } from "../../src/domain/balancing/Strategy.ts"
import { type Backend, type BalancerName, balancerNames } from "../../src/domain/Config.ts"
import * as BalancerLive from "../../src/layers/BalancerLive.ts"
import { Balancer, type ClientView } from "../../src/services/Balancer.ts"
import { backend, connectionClosed, connectionOpened, registryOf, setState } from "./fixtures.ts"

const a = backend("10.0.0.1", 80)
const b = backend("10.0.0.2", 80)
const c = backend("10.0.0.3", 80)
const d = backend("10.0.0.4", 80, 2)
const e = backend("10.0.0.5", 80, 5)
const client: ClientView = { ip: "192.0.2.10", port: 50000 }
/** A different client for each `i`, so that `hash` is exercised over many ring positions too. */
const clientNo = (i: number): ClientView => ({ ip: `198.51.${(i >> 8) & 255}.${i & 255}`, port: 40000 + (i % 20000) })

/** A balancer over a real registry of `backends`, with the registry exposed to the test. */
const env = (name: BalancerName, backends: ReadonlyArray<Backend>) =>
  BalancerLive.make(name).pipe(Layer.provideMerge(registryOf(backends)))

/** Counts how often each address comes first over `rounds` picks. */
const firstCounts = (rounds: number) =>
  Effect.gen(function*() {
    const balancer = yield* Balancer
    const counts = new Map<string, number>()
    for (let i = 0; i < rounds; i++) {
      const first = (yield* balancer.candidates(client))[0]
      if (first === undefined) return assert.fail("no candidate")
      counts.set(first.address, (counts.get(first.address) ?? 0) + 1)
    }
    return counts
  })

const share = (counts: Map<string, number>, address: string, rounds: number) => (counts.get(address) ?? 0) / rounds

/** Asserts a share within ±15% (relative) of what it should be. */
const assertShare = (actual: number, expected: number, what: string) =>
  assert.isTrue(Math.abs(actual - expected) <= 0.15 * expected, `${what}: ${actual} is not within 15% of ${expected}`)

/** The balancers that draw at random: their shares are checked statistically. */
const randomNames: ReadonlyArray<BalancerName> = ["random", "p2c"]

describe("BalancerLive", () => {
  for (const name of balancerNames) {
    describe(`${name} (every balancer)`, () => {
      it.effect("offers only HEALTHY backends", () =>
        Effect.gen(function*() {
          const balancer = yield* Balancer
          yield* setState(b.address, "UNHEALTHY")
          for (let i = 0; i < 200; i++) {
            const candidates = (yield* balancer.candidates(clientNo(i))).map((x) => x.address)
            assert.sameMembers(candidates, [a.address, c.address])
          }
          yield* setState(b.address, "HEALTHY")
          yield* setState(a.address, "UNHEALTHY")
          yield* setState(c.address, "UNHEALTHY")
          for (let i = 0; i < 50; i++) {
            assert.deepStrictEqual((yield* balancer.candidates(clientNo(i))).map((x) => x.address), [b.address])
          }
        }).pipe(Random.withSeed(`healthy-${name}`), Effect.provide(env(name, [a, b, c]))))

      it.effect("offers nothing when no backend is HEALTHY", () =>
        Effect.gen(function*() {
          const balancer = yield* Balancer
          for (const x of [a, b, c]) yield* setState(x.address, "UNHEALTHY")
          for (let i = 0; i < 20; i++) assert.deepStrictEqual(yield* balancer.candidates(clientNo(i)), [])
          yield* setState(c.address, "HEALTHY")
          for (let i = 0; i < 20; i++) assert.deepStrictEqual(yield* balancer.candidates(clientNo(i)), [c])
        }).pipe(Random.withSeed(`none-${name}`), Effect.provide(env(name, [a, b, c]))))

      it.effect("lists every HEALTHY backend exactly once, so retries go to distinct backends", () =>
        Effect.gen(function*() {
          const balancer = yield* Balancer
          yield* connectionOpened(b.address)
          yield* setState(c.address, "UNHEALTHY")
          const healthy = [a, b, d, e].map((x) => x.address)
          for (let i = 0; i < 300; i++) {
            const candidates = (yield* balancer.candidates(clientNo(i))).map((x) => x.address)
            assert.strictEqual(candidates.length, healthy.length)
            assert.strictEqual(new Set(candidates).size, candidates.length)
            assert.sameMembers(candidates, healthy)
          }
        }).pipe(Random.withSeed(`distinct-${name}`), Effect.provide(env(name, [a, b, c, d, e]))))
    })
  }

  for (const name of randomNames) {
    describe(name, () => {
      it.effect("varies its order between picks", () =>
        Effect.gen(function*() {
          const orders = new Set<string>()
          const balancer = yield* Balancer
          for (let i = 0; i < 300; i++) orders.add((yield* balancer.candidates(client)).map((x) => x.address).join(","))
          assert.strictEqual(orders.size, 6) // all 3! orders of three idle, equal backends show up
        }).pipe(Random.withSeed(`orders-${name}`), Effect.provide(env(name, [a, b, c]))))

      it.effect("spreads evenly over equal idle backends", () =>
        Effect.gen(function*() {
          const rounds = 3000
          const counts = yield* firstCounts(rounds)
          for (const x of [a, b, c]) assertShare(share(counts, x.address, rounds), 1 / 3, x.address)
        }).pipe(Random.withSeed(`uniform-${name}`), Effect.provide(env(name, [a, b, c]))))

      it.effect("honours weights: weight 3 against 1 is picked about 75% of the time", () =>
        Effect.gen(function*() {
          const rounds = 3000
          const counts = yield* firstCounts(rounds)
          assertShare(share(counts, "10.0.1.1:80", rounds), 0.75, "weight 3")
          assertShare(share(counts, "10.0.1.2:80", rounds), 0.25, "weight 1")
        }).pipe(
          Random.withSeed(`weights-${name}`),
          Effect.provide(env(name, [backend("10.0.1.1", 80, 3), backend("10.0.1.2", 80, 1)]))
        ))

      it.effect("is deterministic for a given seed", () =>
        Effect.gen(function*() {
          const balancer = yield* Balancer
          const draw = Effect.gen(function*() {
            const orders: Array<string> = []
            for (let i = 0; i < 20; i++) orders.push((yield* balancer.candidates(client)).map((x) => x.address).join(","))
            return orders
          })
          const first = yield* Random.withSeed(draw, "same")
          const second = yield* Random.withSeed(draw, "same")
          const other = yield* Random.withSeed(draw, "different")
          assert.deepStrictEqual(first, second)
          assert.notDeepEqual(first, other)
        }).pipe(Effect.provide(env(name, [a, b, c]))))
    })
  }

  describe("random", () => {
    it.effect("ignores load", () =>
      Effect.gen(function*() {
        for (let i = 0; i < 50; i++) yield* connectionOpened(a.address)
        const rounds = 3000
        const counts = yield* firstCounts(rounds)
        assertShare(share(counts, a.address, rounds), 1 / 3, a.address)
      }).pipe(Random.withSeed("random-load"), Effect.provide(env("random", [a, b, c]))))
  })

  describe("p2c", () => {
    it.effect("with two backends always puts the unloaded one first", () =>
      Effect.gen(function*() {
        const balancer = yield* Balancer
        for (let i = 0; i < 20; i++) yield* connectionOpened(a.address)
        for (let i = 0; i < 500; i++) {
          assert.deepStrictEqual((yield* balancer.candidates(client)).map((x) => x.address), [b.address, a.address])
        }
        // one connection is enough to lose the comparison
        for (let i = 0; i < 19; i++) yield* connectionClosed(a.address)
        for (let i = 0; i < 100; i++) {
          assert.deepStrictEqual((yield* balancer.candidates(client)).map((x) => x.address), [b.address, a.address])
        }
        // and once both are idle again, either may come first
        yield* connectionClosed(a.address)
        const rounds = 1000
        const counts = yield* firstCounts(rounds)
        assertShare(share(counts, a.address, rounds), 0.5, a.address)
      }).pipe(Random.withSeed("p2c-two"), Effect.provide(env("p2c", [a, b]))))

    it.effect("with three backends puts the loaded one first far less often than a third of the time", () =>
      Effect.gen(function*() {
        for (let i = 0; i < 10; i++) yield* connectionOpened(a.address)
        const rounds = 3000
        const counts = yield* firstCounts(rounds)
        // it can only be first when drawn with a backend that is no less loaded, and both others are idle
        assert.strictEqual(counts.get(a.address) ?? 0, 0)
        assertShare(share(counts, b.address, rounds), 0.5, b.address)
        assertShare(share(counts, c.address, rounds), 0.5, c.address)
      }).pipe(Random.withSeed("p2c-three"), Effect.provide(env("p2c", [a, b, c]))))

    it.effect("compares two random picks, not all backends (unlike least-conn)", () =>
      Effect.gen(function*() {
        for (let i = 0; i < 10; i++) yield* connectionOpened(a.address)
        for (let i = 0; i < 5; i++) yield* connectionOpened(b.address)
        const rounds = 3000
        const counts = yield* firstCounts(rounds)
        // pairs {a,c} and {b,c} go to c, pair {a,b} goes to b: b first a third of the time
        assert.strictEqual(counts.get(a.address) ?? 0, 0)
        assertShare(share(counts, b.address, rounds), 1 / 3, b.address)
        assertShare(share(counts, c.address, rounds), 2 / 3, c.address)
      }).pipe(Random.withSeed("p2c-pairs"), Effect.provide(env("p2c", [a, b, c]))))

    it.effect("compares active connections per unit of weight", () =>
      Effect.gen(function*() {
        const balancer = yield* Balancer
        const heavy = backend("10.0.2.1", 80, 4)
        const light = backend("10.0.2.2", 80, 1)
        // heavy: 3 connections over weight 4 (0.75 each); light: 1 over weight 1 (1.0)
        for (let i = 0; i < 3; i++) yield* connectionOpened(heavy.address)
        yield* connectionOpened(light.address)
        for (let i = 0; i < 300; i++) {
          assert.deepStrictEqual((yield* balancer.candidates(client)).map((x) => x.address), [heavy.address, light.address])
        }
        // 5 over weight 4 (1.25) is more than 1 over weight 1: now light wins
        for (let i = 0; i < 2; i++) yield* connectionOpened(heavy.address)
        for (let i = 0; i < 300; i++) {
          assert.deepStrictEqual((yield* balancer.candidates(client)).map((x) => x.address), [light.address, heavy.address])
        }
      }).pipe(Random.withSeed("p2c-weight"), Effect.provide(env("p2c", [backend("10.0.2.1", 80, 4), backend("10.0.2.2", 80, 1)]))))

    it.effect("skips an UNHEALTHY idle backend in favour of a loaded healthy one", () =>
      Effect.gen(function*() {
        const balancer = yield* Balancer
        for (let i = 0; i < 10; i++) yield* connectionOpened(a.address)
        yield* setState(b.address, "UNHEALTHY")
        for (let i = 0; i < 100; i++) {
          assert.deepStrictEqual((yield* balancer.candidates(client)).map((x) => x.address), [a.address])
        }
      }).pipe(Random.withSeed("p2c-unhealthy"), Effect.provide(env("p2c", [a, b]))))
  })
})

/** Pure strategies, driven by a scripted uniform source. */
describe("BalancerLive strategies", () => {
  const status = (x: Backend, activeConnections = 0): BackendView => ({
    backend: x,
    weight: x.weight,
    activeConnections,
    eligible: true
  })
  const sequence = (values: ReadonlyArray<number>) => {
    let i = 0
    return () => {
      const value = values[i % values.length]
      i++
      return value ?? 0
    }
  }
  const order = (statuses: ReadonlyArray<BackendView>) => statuses.map((s) => s.backend.address)

  it("load is active connections per unit of weight", () => {
    assert.strictEqual(load(status(backend("h", 1, 4), 2)), 0.5)
    assert.strictEqual(load(status(backend("h", 1, 1), 3)), 3)
    assert.strictEqual(load(status(backend("h", 1, 2), 0)), 0)
  })

  it("weightedShuffle with equal draws puts heavier backends first", () => {
    const light = backend("10.0.3.1", 80, 1)
    const medium = backend("10.0.3.2", 80, 2)
    const heavy = backend("10.0.3.3", 80, 5)
    const shuffled = weightedShuffle([status(light), status(medium), status(heavy)], () => 0.5)
    assert.deepStrictEqual(order(shuffled), [heavy.address, medium.address, light.address])
  })

  it("weightedShuffle with equal weights follows the draws, smallest draw first", () => {
    const shuffled = weightedShuffle([status(a), status(b), status(c)], sequence([0.9, 0.1, 0.5]))
    assert.deepStrictEqual(order(shuffled), [b.address, c.address, a.address])
  })

  it("weightedShuffle handles a draw of 0 and empty input", () => {
    assert.deepStrictEqual(order(weightedShuffle([status(a), status(b)], sequence([0.5, 0]))), [b.address, a.address])
    assert.deepStrictEqual(weightedShuffle([], () => 0.5), [])
  })

  it("powerOfTwoChoices swaps the two picks when the second is less loaded, and only then", () => {
    // draws make a, then b, then c the shuffle order
    const draws = [0.1, 0.5, 0.9]
    assert.deepStrictEqual(order(powerOfTwoChoices([status(a, 2), status(b, 1), status(c, 0)], sequence(draws))), [
      b.address,
      a.address,
      c.address
    ])
    assert.deepStrictEqual(order(powerOfTwoChoices([status(a, 1), status(b, 2), status(c, 0)], sequence(draws))), [
      a.address,
      b.address,
      c.address
    ])
    // a tie keeps the drawn order
    assert.deepStrictEqual(order(powerOfTwoChoices([status(a, 1), status(b, 1), status(c, 0)], sequence(draws))), [
      a.address,
      b.address,
      c.address
    ])
  })

  it("powerOfTwoChoices copes with one backend or none", () => {
    assert.deepStrictEqual(order(powerOfTwoChoices([status(a, 5)], () => 0.3)), [a.address])
    assert.deepStrictEqual(powerOfTwoChoices([], () => 0.3), [])
  })
})
