import { assert, describe, it } from "@effect/vitest"
import { LogBudget } from "../../src/domain/LogBudget.ts"

describe("LogBudget", () => {
  it("admits at most perSecond lines of a kind per second, counting the rest", () => {
    const budget = new LogBudget()
    const admitted = Array.from({ length: 25 }, (_, i) => budget.admit("bad ClientHello", 10, 1000 + i))
    assert.strictEqual(admitted.filter(Boolean).length, 10)
    assert.deepStrictEqual(admitted.slice(0, 10), Array(10).fill(true))
    assert.deepStrictEqual(budget.drain(1100), [{ kind: "bad ClientHello", suppressed: 15 }])
    assert.deepStrictEqual(budget.drain(1200), [], "a drain reports each suppressed line once")
  })

  it("keeps kinds apart, and starts a new window each second", () => {
    const budget = new LogBudget()
    for (let i = 0; i < 5; i++) budget.admit("a", 2, 0)
    for (let i = 0; i < 5; i++) budget.admit("b", 2, 0)
    assert.isTrue(budget.admit("a", 2, 1000), "a new second, a new budget")
    assert.isTrue(budget.admit("a", 2, 1500))
    assert.isFalse(budget.admit("a", 2, 1999))
    assert.sameDeepMembers([...budget.drain(2000)], [{ kind: "a", suppressed: 4 }, { kind: "b", suppressed: 3 }])
  })

  it("forgets kinds that have been quiet for a second, so it holds only recent ones", () => {
    const budget = new LogBudget()
    for (let i = 0; i < 1000; i++) budget.admit(`kind ${i}`, 1, 0)
    budget.drain(500)
    budget.drain(1000)
    // All forgotten: each kind gets a fresh budget.
    for (let i = 0; i < 1000; i++) assert.isTrue(budget.admit(`kind ${i}`, 1, 1000))
  })
})
