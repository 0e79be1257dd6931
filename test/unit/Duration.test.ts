import { assert, describe, it } from "@effect/vitest"
import { Duration, Option, Result } from "effect"
import * as DurationText from "../../src/domain/Duration.ts"

/** The parsed duration in nanoseconds, failing the test when the text was rejected. */
const nanos = (text: string): bigint => {
  const parsed = DurationText.parse(text)
  if (Option.isNone(parsed)) return assert.fail(`expected "${text}" to parse`)
  return Duration.toNanosUnsafe(parsed.value)
}

const second = 1_000_000_000n
const milli = 1_000_000n

describe("Duration.parse", () => {
  it("accepts Go-style single units", () => {
    assert.strictEqual(nanos("3s"), 3n * second)
    assert.strictEqual(nanos("500ms"), 500n * milli)
    assert.strictEqual(nanos("2h"), 2n * 3600n * second)
    assert.strictEqual(nanos("7m"), 7n * 60n * second)
    assert.strictEqual(nanos("10us"), 10_000n)
    assert.strictEqual(nanos("10µs"), 10_000n)
    assert.strictEqual(nanos("5ns"), 5n)
  })

  it("accepts Go-style compound and fractional values", () => {
    assert.strictEqual(nanos("1m30s"), 90n * second)
    assert.strictEqual(nanos("1h2m3s"), 3723n * second)
    assert.strictEqual(nanos("1s500ms"), 1500n * milli)
    assert.strictEqual(nanos("1.5s"), 1500n * milli)
    assert.strictEqual(nanos("1.5h"), 90n * 60n * second)
  })

  it("accepts Effect's duration text", () => {
    assert.strictEqual(nanos("3 seconds"), 3n * second)
    assert.strictEqual(nanos("1 second"), second)
    assert.strictEqual(nanos("500 millis"), 500n * milli)
    assert.strictEqual(nanos("2 minutes"), 120n * second)
    assert.strictEqual(nanos("1 hour"), 3600n * second)
    assert.strictEqual(nanos("10 micros"), 10_000n)
    assert.strictEqual(nanos("5 nanos"), 5n)
    assert.strictEqual(nanos("1 day"), 86_400n * second)
  })

  it("agrees with Effect's own parser on Effect-style text", () => {
    const texts = ["3 seconds", "500 millis", "2 minutes", "1 hour", "10 micros", "1 week"] as const satisfies ReadonlyArray<
      Duration.Input
    >
    for (const text of texts) {
      const ours = DurationText.parse(text)
      const effects = Duration.fromInput(text)
      assert.isTrue(Option.isSome(ours) && Option.isSome(effects) && Duration.equals(ours.value, effects.value), text)
    }
  })

  it("ignores surrounding whitespace", () => {
    assert.strictEqual(nanos(" 3s "), 3n * second)
  })

  it("rejects text that is not a duration", () => {
    for (const text of ["3x", "", "s", "ms", "3", "-3s", "3 s", "3S", "s3", "3s x", "1m30", "three seconds", "3 parsecs", "3seconds", "1..5s"]) {
      assert.isTrue(Option.isNone(DurationText.parse(text)), JSON.stringify(text))
    }
  })
})

describe("Duration.parseWithin", () => {
  const accepted = (text: string, range: DurationText.Range) => Result.isSuccess(DurationText.parseWithin(text, range))

  it("accepts timeouts from 1ms to 24 days, and nothing outside", () => {
    for (const text of ["1ms", "3s", "24h", "576h", "24 days"]) assert.isTrue(accepted(text, DurationText.timeoutRange), text)
    for (const text of ["0s", "500us", "999h", "25 days", "1000000000000000000000h", `${"9".repeat(400)}s`]) {
      assert.isFalse(accepted(text, DurationText.timeoutRange), text)
    }
  })

  it("accepts intervals from 100ms up, and names the range when it refuses", () => {
    assert.isTrue(accepted("100ms", DurationText.intervalRange))
    assert.isTrue(accepted("5s", DurationText.intervalRange))
    assert.isFalse(accepted("0s", DurationText.intervalRange))
    assert.isFalse(accepted("99ms", DurationText.intervalRange))
    const refused = DurationText.parseWithin("0s", DurationText.intervalRange)
    assert.isTrue(Result.isFailure(refused) && refused.failure.includes("between 100ms and 24 days"))
  })
})
