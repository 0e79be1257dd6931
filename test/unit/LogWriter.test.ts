import { assert, describe, it } from "@effect/vitest"
import { Deferred, Effect } from "effect"
import * as LogWriter from "../../src/log/LogWriter.ts"

/** A thread program that fails as it starts. */
const failing = new URL(`data:text/javascript,${encodeURIComponent("throw new Error('no room to start')")}`)

describe("LogWriter", () => {
  it.live("a log thread that fails hands back the lines it was given, says why once, and later lines go the other way", () =>
    Effect.gen(function*() {
      const lines: Array<string> = []
      const failed = Deferred.makeUnsafe<string>()
      const reasons: Array<string> = []
      const writer = LogWriter.start({
        fd: 2,
        windowMs: 5,
        fallback: {
          line: (text) => lines.push(text),
          access: (entry, _timestamp, _fiber, json) => lines.push(`access ${entry.client} ${entry.end}${json ? " json" : ""}`)
        },
        onFailure: (reason) => {
          reasons.push(reason)
          // What the thread was given is handed back before the failure is told.
          lines.push("(failure told)")
          Deferred.doneUnsafe(failed, Effect.succeed(reason))
        },
        program: failing
      })
      writer.output.line("before")
      writer.output.access({
        client: "127.0.0.1:5000",
        backend: undefined,
        backend_local: undefined,
        bytes_in: 0,
        bytes_out: 0,
        duration_ms: 1,
        end: "done"
      }, Date.now(), 1, true)
      const reason = yield* Deferred.await(failed)
      writer.output.line("after")
      yield* writer.stop
      assert.match(reason, /no room to start/)
      assert.deepStrictEqual(reasons, [reason])
      assert.deepStrictEqual(lines, ["before", "access 127.0.0.1:5000 done json", "(failure told)", "after"])
    }))
})
