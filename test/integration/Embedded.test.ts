import { execFile } from "node:child_process"
import { fileURLToPath } from "node:url"
import { assert, describe, it } from "@effect/vitest"
import { Effect } from "effect"

const example = fileURLToPath(new URL("../../example/embedded.ts", import.meta.url))

describe("example/embedded.ts", () => {
  it.live("embeds the proxy with its own registry, serves a request through it and ends cleanly", () =>
    Effect.gen(function*() {
      const result = yield* Effect.callback<{ code: number | null; stdout: string }>((resume) => {
        const child = execFile(process.execPath, [example], { timeout: 20_000 }, (error, stdout) =>
          resume(Effect.succeed({ code: error === null ? 0 : typeof error.code === "number" ? error.code : 1, stdout })))
        return Effect.sync(() => child.kill("SIGKILL"))
      })
      assert.strictEqual(result.code, 0)
      assert.include(result.stdout, "[embedded] hello through the embedded proxy")
      assert.match(result.stdout, /connection closed/)
    }))
})
