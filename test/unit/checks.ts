/**
 * Small helpers the unit tests of parsers share: unwrapping a parser's
 * result, and a seeded random source for fuzzing.
 */
import { assert } from "@effect/vitest"
import { Result } from "effect"

/** The parsed value, failing the test with the parser's reason when it rejected the input. */
export const ok = <A>(result: Result.Result<A, string>): A => {
  if (Result.isFailure(result)) return assert.fail(`expected success, got "${result.failure}"`)
  return result.success
}

/** The parser's reason, failing the test when it accepted the input. */
export const rejected = <A>(result: Result.Result<A, string>): string => {
  if (Result.isSuccess(result)) return assert.fail(`expected a failure, got ${JSON.stringify(result.success)}`)
  return result.failure
}

/** A small seeded PRNG (mulberry32), so that the random tests are the same on every run. */
export const prng = (seed: number) => {
  let state = seed >>> 0
  const next = (): number => {
    state = (state + 0x6d2b79f5) >>> 0
    let t = state
    t = Math.imul(t ^ (t >>> 15), t | 1)
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61)
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296
  }
  return { next, int: (below: number): number => Math.floor(next() * below) }
}
