import { assert, describe, it } from "@effect/vitest"
import * as Health from "../../src/domain/Health.ts"

const thresholds: Health.Thresholds = { unhealthy: 3, healthy: 2 }

/** Feeds results through the state machine, returning the state after each one. */
const run = (results: ReadonlyArray<boolean>, from: Health.HealthCounter = Health.initial, t = thresholds) => {
  const states: Array<Health.HealthCounter> = []
  let counter = from
  for (const success of results) {
    counter = Health.next(counter, success, t)
    states.push(counter)
  }
  return states
}

const healthyAfter = (results: ReadonlyArray<boolean>, from: Health.HealthCounter = Health.initial, t = thresholds) =>
  run(results, from, t).map((counter) => counter.healthy)

const unhealthy: Health.HealthCounter = { healthy: false, streak: 0 }

describe("Health", () => {
  it("starts HEALTHY with no streak", () => {
    assert.deepStrictEqual(Health.initial, { healthy: true, streak: 0 })
  })

  it("turns UNHEALTHY on the unhealthy threshold's failure, not before", () => {
    assert.deepStrictEqual(healthyAfter([false, false, false]), [true, true, false])
    assert.deepStrictEqual(run([false, false]).map((c) => c.streak), [1, 2])
  })

  it("resets the streak when it turns", () => {
    const [, , last] = run([false, false, false])
    assert.deepStrictEqual(last, { healthy: false, streak: 0 })
  })

  it("stays HEALTHY while failures flap with successes", () => {
    assert.deepStrictEqual(healthyAfter([false, false, true, false, false]), [true, true, true, true, true])
    const flapping = run([false, false, true, false, false, true, false, false])
    assert.isTrue(flapping.every((c) => c.healthy))
    assert.deepStrictEqual(flapping.map((c) => c.streak), [1, 2, 0, 1, 2, 0, 1, 2])
  })

  it("counts the failures again from zero after a success", () => {
    // after the success, two failures are not enough; the third makes it UNHEALTHY
    assert.deepStrictEqual(healthyAfter([false, false, true, false, false, false]), [true, true, true, true, true, false])
  })

  it("successes while HEALTHY change nothing", () => {
    assert.deepStrictEqual(run([true, true, true]), [Health.initial, Health.initial, Health.initial])
  })

  it("recovers after the healthy threshold's success, not before", () => {
    assert.deepStrictEqual(healthyAfter([true, true], unhealthy), [false, true])
    assert.deepStrictEqual(run([true], unhealthy), [{ healthy: false, streak: 1 }])
  })

  it("uses the healthy threshold for recovery and the unhealthy one for failing", () => {
    const t: Health.Thresholds = { unhealthy: 1, healthy: 4 }
    assert.deepStrictEqual(healthyAfter([false], Health.initial, t), [false])
    assert.deepStrictEqual(healthyAfter([true, true, true, true], unhealthy, t), [false, false, false, true])
  })

  it("a failure during recovery restarts it", () => {
    assert.deepStrictEqual(healthyAfter([true, false, true, true], unhealthy), [false, false, false, true])
    assert.deepStrictEqual(run([true, false], unhealthy).map((c) => c.streak), [1, 0])
  })

  it("goes round the full cycle", () => {
    const results = [false, false, false, true, true, false, false, false]
    assert.deepStrictEqual(healthyAfter(results), [true, true, false, false, true, true, true, false])
  })

  it("with thresholds of 1 follows every result", () => {
    const t: Health.Thresholds = { unhealthy: 1, healthy: 1 }
    assert.deepStrictEqual(healthyAfter([false, true, false, false, true], Health.initial, t), [false, true, false, false, true])
  })
})
