import { assert, describe, it } from "@effect/vitest"
import { Effect, Layer } from "effect"
import type { Backend } from "../../src/domain/Config.ts"
import * as BalancerLive from "../../src/layers/BalancerLive.ts"
import { Balancer } from "../../src/services/Balancer.ts"
import { BackendRegistry } from "../../src/services/BackendRegistry.ts"
import { backend, registryOf, setState } from "./fixtures.ts"

const a = backend("10.0.0.1", 80)
const b = backend("10.0.0.2", 80)
const c = backend("10.0.0.3", 80)

/** A round-robin balancer over a real registry of `backends`, with the registry exposed to the test. */
const env = (backends: ReadonlyArray<Backend>) =>
  BalancerLive.make("round-robin").pipe(Layer.provideMerge(registryOf(backends)))

/** The whole candidate lists of the next `count` picks, as addresses. */
const nextCandidates = (count: number) =>
  Effect.gen(function*() {
    const balancer = yield* Balancer
    const lists: Array<ReadonlyArray<string>> = []
    for (let i = 0; i < count; i++) {
      // the client does not matter to round robin: vary it to make sure
      lists.push((yield* balancer.candidates({ ip: `192.0.2.${i % 250}`, port: 1024 + i })).map((x) => x.address))
    }
    return lists
  })

/** The first candidates of the next `count` picks, as addresses. */
const nextPicks = (count: number) =>
  Effect.map(nextCandidates(count), (lists) =>
    lists.map((list) => {
      const first = list[0]
      if (first === undefined) return assert.fail("no candidate")
      return first
    }))

/** `pattern` (not empty) repeated to `count` entries. */
const repeat = <A>(pattern: ReadonlyArray<A>, count: number): Array<A> => {
  const out: Array<A> = []
  while (out.length < count) out.push(...pattern.slice(0, count - out.length))
  return out
}

describe("round-robin", () => {
  it.effect("equal weights rotate a b c a b c", () =>
    Effect.gen(function*() {
      assert.deepStrictEqual(yield* nextPicks(12), repeat([a.address, b.address, c.address], 12))
    }).pipe(Effect.provide(env([a, b, c]))))

  it.effect("weights 3 and 1 give exactly 3 of every 4 picks to the heavy one, smoothly: A A B A", () => {
    const heavy = backend("10.0.1.1", 80, 3)
    const light = backend("10.0.1.2", 80, 1)
    return Effect.gen(function*() {
      const picks = yield* nextPicks(400)
      // the smooth sequence, not A A A B
      assert.deepStrictEqual(picks.slice(0, 8), [
        heavy.address,
        heavy.address,
        light.address,
        heavy.address,
        heavy.address,
        heavy.address,
        light.address,
        heavy.address
      ])
      assert.deepStrictEqual(picks, repeat([heavy.address, heavy.address, light.address, heavy.address], 400))
      // so every window of 4 consecutive picks holds exactly 3 heavy and 1 light
      for (let i = 0; i + 4 <= picks.length; i++) {
        assert.strictEqual(picks.slice(i, i + 4).filter((x) => x === heavy.address).length, 3, `window at ${i}`)
      }
    }).pipe(Effect.provide(env([heavy, light])))
  })

  it.effect("weights 5, 1, 1 give the classic smooth sequence a a b a c a a", () => {
    const wa = backend("10.0.2.1", 80, 5)
    const wb = backend("10.0.2.2", 80, 1)
    const wc = backend("10.0.2.3", 80, 1)
    return Effect.gen(function*() {
      const cycle = [wa, wa, wb, wa, wc, wa, wa].map((x) => x.address)
      assert.deepStrictEqual(yield* nextPicks(7 * 20), repeat(cycle, 7 * 20))
    }).pipe(Effect.provide(env([wa, wb, wc])))
  })

  it.effect("the order the backends were given in does not change the shares", () => {
    const light = backend("10.0.3.1", 80, 1)
    const heavy = backend("10.0.3.2", 80, 2)
    return Effect.gen(function*() {
      const picks = yield* nextPicks(300)
      assert.strictEqual(picks.filter((x) => x === heavy.address).length, 200)
      assert.strictEqual(picks.filter((x) => x === light.address).length, 100)
      // never twice the light one in a row
      for (let i = 1; i < picks.length; i++) {
        assert.isFalse(picks[i] === light.address && picks[i - 1] === light.address, `light twice at ${i}`)
      }
    }).pipe(Effect.provide(env([light, heavy])))
  })

  it.effect("skips an UNHEALTHY backend and rotates among the rest, then takes it back", () =>
    Effect.gen(function*() {
      assert.deepStrictEqual(yield* nextPicks(3), [a.address, b.address, c.address])
      yield* setState(b.address, "UNHEALTHY")
      const without = yield* nextCandidates(10)
      assert.deepStrictEqual(without.map((list) => list[0]), repeat([a.address, c.address], 10))
      for (const list of without) assert.notInclude(list, b.address)
      yield* setState(b.address, "HEALTHY")
      assert.deepStrictEqual(yield* nextPicks(9), repeat([a.address, b.address, c.address], 9))
    }).pipe(Effect.provide(env([a, b, c]))))

  it.effect("an UNHEALTHY backend's turn goes to the others, not to a burst on one of them", () => {
    const wa = backend("10.0.4.1", 80, 1)
    const wb = backend("10.0.4.2", 80, 1)
    const wc = backend("10.0.4.3", 80, 1)
    const wd = backend("10.0.4.4", 80, 1)
    return Effect.gen(function*() {
      yield* setState(wc.address, "UNHEALTHY")
      const picks = yield* nextPicks(300)
      for (const x of [wa, wb, wd]) assert.strictEqual(picks.filter((p) => p === x.address).length, 100, x.address)
      assert.notInclude(picks, wc.address)
      for (let i = 1; i < picks.length; i++) assert.notStrictEqual(picks[i], picks[i - 1], `same backend twice at ${i}`)
    }).pipe(Effect.provide(env([wa, wb, wc, wd])))
  })

  it.effect("a backend added to the registry joins the rotation; a removed one leaves it", () => {
    const d = backend("10.0.0.4", 80)
    return Effect.gen(function*() {
      const registry = yield* BackendRegistry
      assert.deepStrictEqual(yield* nextPicks(3), [a.address, b.address, c.address])
      yield* registry.update([a, b, c, d])
      assert.deepStrictEqual(yield* nextPicks(8), repeat([a.address, b.address, c.address, d.address], 8))
      yield* registry.update([a, c, d])
      const lists = yield* nextCandidates(9)
      assert.deepStrictEqual(lists.map((list) => list[0]), repeat([a.address, c.address, d.address], 9))
      for (const list of lists) assert.sameMembers([...list], [a.address, c.address, d.address])
    }).pipe(Effect.provide(env([a, b, c])))
  })

  it.effect("with a single HEALTHY backend always offers it alone", () =>
    Effect.gen(function*() {
      yield* setState(a.address, "UNHEALTHY")
      yield* setState(c.address, "UNHEALTHY")
      assert.deepStrictEqual(yield* nextCandidates(5), repeat([[b.address]], 5))
    }).pipe(Effect.provide(env([a, b, c]))))

  it.effect("the second candidate is a different backend: the next one in the rotation", () =>
    Effect.gen(function*() {
      const lists = yield* nextCandidates(9)
      for (const list of lists) {
        assert.strictEqual(list.length, 3)
        assert.notStrictEqual(list[1], list[0])
      }
      assert.deepStrictEqual(
        lists,
        repeat([[a.address, b.address, c.address], [b.address, c.address, a.address], [c.address, a.address, b.address]], 9)
      )
    }).pipe(Effect.provide(env([a, b, c]))))

  it.effect("with unequal weights the second candidate still differs from the first", () => {
    const heavy = backend("10.0.5.1", 80, 3)
    const light = backend("10.0.5.2", 80, 1)
    return Effect.gen(function*() {
      for (const list of yield* nextCandidates(40)) {
        assert.strictEqual(list.length, 2)
        assert.notStrictEqual(list[1], list[0])
      }
    }).pipe(Effect.provide(env([heavy, light])))
  })

  it.effect("each balancer keeps its own rotation", () =>
    Effect.gen(function*() {
      const first = yield* Effect.provide(nextPicks(4), env([a, b, c]))
      const second = yield* Effect.provide(nextPicks(4), env([a, b, c]))
      assert.deepStrictEqual(first, [a.address, b.address, c.address, a.address])
      assert.deepStrictEqual(second, first)
    }))
})
