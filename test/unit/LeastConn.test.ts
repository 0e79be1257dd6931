import { assert, describe, it } from "@effect/vitest"
import { Effect, Layer, Random } from "effect"
import { leastConn } from "../../src/domain/balancing/LeastConn.ts"
import type { BackendView } from "../../src/domain/balancing/Strategy.ts"
import type { Backend } from "../../src/domain/Config.ts"
import * as BalancerLive from "../../src/layers/BalancerLive.ts"
import { Balancer, type ClientView } from "../../src/services/Balancer.ts"
import { backend, connectionClosed, connectionOpened, registryOf, setState } from "./fixtures.ts"

const a = backend("10.0.0.1", 80)
const b = backend("10.0.0.2", 80)
const c = backend("10.0.0.3", 80)
const client: ClientView = { ip: "192.0.2.10", port: 50000 }

/** A least-conn balancer over a real registry of `backends`, with the registry exposed to the test. */
const env = (backends: ReadonlyArray<Backend>) =>
  BalancerLive.make("least-conn").pipe(Layer.provideMerge(registryOf(backends)))

/** Opens `count` connections on `address`. */
const open = (address: string, count: number) =>
  Effect.gen(function*() {
    for (let i = 0; i < count; i++) yield* connectionOpened(address)
  })

/** The candidates for a client, as addresses. */
const candidates = Effect.gen(function*() {
  const balancer = yield* Balancer
  return (yield* balancer.candidates(client)).map((x) => x.address)
})

/** Counts how often each address comes first over `rounds` picks. */
const firstCounts = (rounds: number) =>
  Effect.gen(function*() {
    const counts = new Map<string, number>()
    for (let i = 0; i < rounds; i++) {
      const first = (yield* candidates)[0]
      if (first === undefined) return assert.fail("no candidate")
      counts.set(first, (counts.get(first) ?? 0) + 1)
    }
    return counts
  })

const share = (counts: Map<string, number>, address: string, rounds: number) => (counts.get(address) ?? 0) / rounds

const assertBetween = (actual: number, low: number, high: number, what: string) =>
  assert.isTrue(actual >= low && actual <= high, `${what}: ${actual} is not within [${low}, ${high}]`)

describe("least-conn", () => {
  it.effect("puts the backend with the fewest active connections first", () =>
    Effect.gen(function*() {
      yield* open(a.address, 3)
      yield* open(b.address, 1)
      yield* open(c.address, 2)
      for (let i = 0; i < 200; i++) assert.deepStrictEqual(yield* candidates, [b.address, c.address, a.address])
    }).pipe(Random.withSeed("lc-fewest"), Effect.provide(env([a, b, c]))))

  it.effect("follows the counts as connections open and close", () =>
    Effect.gen(function*() {
      yield* open(a.address, 1)
      yield* open(b.address, 1)
      // c is the only idle one
      for (let i = 0; i < 50; i++) assert.strictEqual((yield* candidates)[0], c.address)
      yield* open(c.address, 2)
      yield* connectionClosed(a.address)
      // a: 0, b: 1, c: 2
      for (let i = 0; i < 50; i++) assert.deepStrictEqual(yield* candidates, [a.address, b.address, c.address])
    }).pipe(Random.withSeed("lc-follow"), Effect.provide(env([a, b, c]))))

  it.effect("counts active connections per unit of weight", () => {
    const heavy = backend("10.0.1.1", 80, 4)
    const light = backend("10.0.1.2", 80, 1)
    return Effect.gen(function*() {
      // heavy: 3 over weight 4 (0.75); light: 1 over weight 1 (1)
      yield* open(heavy.address, 3)
      yield* open(light.address, 1)
      for (let i = 0; i < 100; i++) assert.deepStrictEqual(yield* candidates, [heavy.address, light.address])
      // heavy: 5 over weight 4 (1.25) is now more than light's 1
      yield* open(heavy.address, 2)
      for (let i = 0; i < 100; i++) assert.deepStrictEqual(yield* candidates, [light.address, heavy.address])
    }).pipe(Random.withSeed("lc-weight"), Effect.provide(env([heavy, light])))
  })

  it.effect("weight 2 with 2 active ties with weight 1 with 1 active: either may come first, never a more loaded one", () => {
    const double = backend("10.0.2.1", 80, 2)
    const single = backend("10.0.2.2", 80, 1)
    const busy = backend("10.0.2.3", 80, 1)
    return Effect.gen(function*() {
      yield* open(double.address, 2)
      yield* open(single.address, 1)
      yield* open(busy.address, 2)
      const rounds = 2000
      const counts = new Map<string, number>()
      for (let i = 0; i < rounds; i++) {
        const list = yield* candidates
        assert.sameMembers(list.slice(0, 2), [double.address, single.address])
        assert.strictEqual(list[2], busy.address)
        const first = list[0] ?? ""
        counts.set(first, (counts.get(first) ?? 0) + 1)
      }
      // a tie, not an order: each comes first a good part of the time
      assertBetween(share(counts, double.address, rounds), 0.2, 0.8, "weight 2, 2 active")
      assertBetween(share(counts, single.address, rounds), 0.2, 0.8, "weight 1, 1 active")
    }).pipe(Random.withSeed("lc-weight-tie"), Effect.provide(env([double, single, busy])))
  })

  it.effect("breaks ties at random: two equally loaded backends each come first a fair share", () =>
    Effect.gen(function*() {
      yield* open(a.address, 2)
      yield* open(b.address, 2)
      yield* open(c.address, 5)
      const rounds = 2000
      const counts = yield* firstCounts(rounds)
      assert.strictEqual(counts.get(c.address) ?? 0, 0)
      assertBetween(share(counts, a.address, rounds), 0.35, 0.65, a.address)
      assertBetween(share(counts, b.address, rounds), 0.35, 0.65, b.address)
    }).pipe(Random.withSeed("lc-tie"), Effect.provide(env([a, b, c]))))

  it.effect("breaks ties at random whatever order the backends were given in", () =>
    Effect.gen(function*() {
      // all idle: every one is tied with every other
      const rounds = 3000
      const counts = yield* firstCounts(rounds)
      for (const x of [a, b, c]) assertBetween(share(counts, x.address, rounds), 0.28, 0.39, x.address)
    }).pipe(Random.withSeed("lc-idle"), Effect.provide(env([c, a, b]))))

  it.effect("honours weights among idle backends: weight 3 against 1 comes first about 75% of the time", () => {
    const heavy = backend("10.0.3.1", 80, 3)
    const light = backend("10.0.3.2", 80, 1)
    return Effect.gen(function*() {
      const rounds = 3000
      const counts = yield* firstCounts(rounds)
      assertBetween(share(counts, heavy.address, rounds), 0.75 * 0.85, 0.75 * 1.15, "weight 3")
      assertBetween(share(counts, light.address, rounds), 0.25 * 0.85, 0.25 * 1.15, "weight 1")
    }).pipe(Random.withSeed("lc-idle-weights"), Effect.provide(env([light, heavy])))
  })

  it.effect("orders all candidates by load, ties in either order", () => {
    const w1 = backend("10.0.4.1", 80, 1)
    const w2 = backend("10.0.4.2", 80, 2)
    const w4 = backend("10.0.4.3", 80, 4)
    const w1b = backend("10.0.4.4", 80, 1)
    const idle = backend("10.0.4.5", 80, 1)
    return Effect.gen(function*() {
      yield* open(w1.address, 4) // 4
      yield* open(w2.address, 3) // 1.5
      yield* open(w4.address, 6) // 1.5
      yield* open(w1b.address, 1) // 1
      const orders = new Set<string>()
      for (let i = 0; i < 300; i++) {
        const list = yield* candidates
        assert.strictEqual(list[0], idle.address)
        assert.strictEqual(list[1], w1b.address)
        assert.sameMembers(list.slice(2, 4), [w2.address, w4.address])
        assert.strictEqual(list[4], w1.address)
        orders.add(list.join(","))
      }
      // the tie between w2 and w4 goes both ways
      assert.strictEqual(orders.size, 2)
    }).pipe(Random.withSeed("lc-order"), Effect.provide(env([w1, w2, w4, w1b, idle])))
  })

  it.effect("skips an UNHEALTHY idle backend in favour of loaded healthy ones", () =>
    Effect.gen(function*() {
      yield* open(a.address, 7)
      yield* open(b.address, 3)
      yield* setState(c.address, "UNHEALTHY")
      for (let i = 0; i < 100; i++) assert.deepStrictEqual(yield* candidates, [b.address, a.address])
    }).pipe(Random.withSeed("lc-unhealthy"), Effect.provide(env([a, b, c]))))

  it("the strategy reads the load it is given, in any input order", () => {
    const status = (x: Backend, activeConnections: number): BackendView => ({
      backend: x,
      weight: x.weight,
      activeConnections,
      eligible: true
    })
    const statuses = [status(a, 5), status(b, 0), status(c, 2)]
    const strategy = leastConn()
    // draws that shuffle the input into every order first
    const draws = [0.9, 0.1, 0.5, 0.3, 0.7, 0.2, 0.4, 0.8, 0.6]
    let next = 0
    const uniform = () => draws[next++ % draws.length] ?? 0
    for (let i = 0; i < 12; i++) {
      const order = strategy.order(statuses, { members: statuses, generation: 0, client, uniform }).map((s) => s.backend.address)
      assert.deepStrictEqual(order, [b.address, c.address, a.address])
    }
  })
})
