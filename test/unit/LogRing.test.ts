import { assert, describe, it } from "@effect/vitest"
import type { AccessEntry } from "../../src/domain/AccessLine.ts"
import * as LogRing from "../../src/log/LogRing.ts"

/** What a reader got, in order: lines (parts joined) and access entries. */
const reading = () => {
  const got: Array<string | { entry: AccessEntry; timestamp: number; fiber: number; json: boolean }> = []
  let partial = ""
  return {
    got,
    handler: {
      bytes: (bytes: Buffer) => {
        const text = partial + bytes.toString("utf8")
        partial = text.endsWith("\n") ? "" : text
        if (partial === "") got.push(text.slice(0, -1))
      },
      access: (entry: AccessEntry, timestamp: number, fiber: number, json: boolean) =>
        got.push({ entry, timestamp, fiber, json })
    }
  }
}

const entry = (i: number): AccessEntry => ({
  client: `127.0.0.${i % 250}:${1000 + i}`,
  backend: i % 3 === 0 ? undefined : `backend-${i}.example:80`,
  backend_local: i % 3 === 0 ? undefined : `[::1]:${2000 + i}`,
  bytes_in: i * 1_000_003,
  bytes_out: 2 ** 40 + i,
  duration_ms: i % 7,
  end: i % 2 === 0 ? "done" : "client_reset"
})

describe("LogRing", () => {
  it("passes lines and access entries in order, over many turns of the ring", () => {
    const ring = LogRing.make(0)
    const writer = new LogRing.RingWriter(ring)
    const reader = new LogRing.RingReader(ring)
    const { got, handler } = reading()
    const expected: Array<unknown> = []
    // About 40 KiB a round, some 50 rounds: the ring (256 KiB) turns several times.
    for (let round = 0; round < 50; round++) {
      for (let i = 0; i < 200; i++) {
        const n = round * 200 + i
        if (n % 2 === 0) {
          const text = `line ${n} ${"ü".repeat(n % 97)}`
          assert.isTrue(writer.line(text))
          expected.push(text)
        } else {
          assert.isTrue(writer.access(entry(n), 1_700_000_000_000 + n, n, n % 4 === 1))
          expected.push({ entry: entry(n), timestamp: 1_700_000_000_000 + n, fiber: n, json: n % 4 === 1 })
        }
      }
      reader.drain(handler)
    }
    assert.deepStrictEqual(got, expected)
  })

  it("carries a line longer than a record in parts, without splitting a character", () => {
    const ring = LogRing.make(0)
    const writer = new LogRing.RingWriter(ring)
    const reader = new LogRing.RingReader(ring)
    const { got, handler } = reading()
    // Surrogate pairs all along: wherever a part ends, it could fall between the two halves of one.
    const long = `${"a".repeat(21_844)}${"🚀".repeat(40_000)}`
    assert.isTrue(writer.line(long))
    assert.isTrue(writer.line("after"))
    reader.drain(handler)
    assert.deepStrictEqual(got, [long, "after"])
  })

  it("refuses records once the reader has ended, rather than waiting for room", () => {
    const ring = LogRing.make(0)
    const writer = new LogRing.RingWriter(ring)
    const reader = new LogRing.RingReader(ring)
    reader.end()
    // Far more than the ring holds: a writer waiting for room would never return.
    for (let i = 0; i < 10_000; i++) assert.isFalse(writer.line(`line ${i} ${"x".repeat(100)}`))
    assert.isFalse(writer.access(entry(1), 0, 1, false))
  })

  it("tells the reader when the writer stops", () => {
    const ring = LogRing.make(0)
    const writer = new LogRing.RingWriter(ring)
    const reader = new LogRing.RingReader(ring)
    assert.isFalse(reader.stopped)
    writer.line("last")
    writer.stop()
    assert.isTrue(reader.stopped)
    // A stopped writer does not make the reader wait.
    reader.wait(60_000)
    const { got, handler } = reading()
    reader.drain(handler)
    assert.deepStrictEqual(got, ["last"])
  })
})
