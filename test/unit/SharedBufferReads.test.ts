import { assert, describe, it } from "@effect/vitest"
import { SharedBufferReads } from "../../src/net/SharedBufferReads.ts"

describe("SharedBufferReads", () => {
  it("holds what a socket reads before its relay starts, about a chunk, then stops the socket", () => {
    const { buffer, callback } = new SharedBufferReads().onread
    const into = typeof buffer === "function" ? buffer() : buffer
    let held = 0
    // Reading goes on (no resume needed later) while little is held; a read that brings it to a chunk stops it.
    for (let reads = 0; reads < 64 && callback(4096, into); reads++) held += 4096
    held += 4096
    assert.isAtLeast(held, 32 * 1024)
    assert.isBelow(held, 64 * 1024)
  })
})
