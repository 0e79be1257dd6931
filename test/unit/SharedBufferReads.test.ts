import { assert, describe, it } from "@effect/vitest"
import { SharedBufferReads } from "../../src/net/SharedBufferReads.ts"

describe("SharedBufferReads", () => {
  it("holds what a socket reads before its relay starts: it reads on while it holds a little, then stops", () => {
    const { buffer, callback } = new SharedBufferReads().onread
    const into = typeof buffer === "function" ? buffer() : buffer
    let held = 0
    // Reading goes on (no resume needed later) while little is held; the read that brings it past a few KiB stops it.
    for (let reads = 0; reads < 64 && callback(1000, into); reads++) held += 1000
    held += 1000
    assert.isAtLeast(held, 2 * 1000)
    assert.isBelow(held, 8 * 1024)
  })
})
