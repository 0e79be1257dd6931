import { assert, describe, it } from "@effect/vitest"
import { Effect, Layer, Result } from "effect"
import * as Config from "../../src/domain/Config.ts"
import * as Logging from "../../src/layers/Logging.ts"
import * as SettingsLive from "../../src/layers/SettingsLive.ts"
import { AccessLog } from "../../src/services/AccessLog.ts"

/** Runs `body` with stderr's writes captured, in the order written (as text). */
const capturingStderr = <A, E, R>(body: (writes: Array<string>) => Effect.Effect<A, E, R>) =>
  Effect.acquireUseRelease(
    Effect.sync(() => {
      const writes: Array<string> = []
      const original = process.stderr.write
      process.stderr.write = (chunk: string | Uint8Array) => {
        writes.push(typeof chunk === "string" ? chunk : Buffer.from(chunk).toString("utf8"))
        return true
      }
      return { writes, original }
    }),
    ({ writes }) => body(writes),
    ({ original }) => Effect.sync(() => (process.stderr.write = original))
  )

const config = Config.make({
  listen: { host: "127.0.0.1", port: 0 },
  backends: [Result.getOrThrow(Config.backend("127.0.0.1:1"))],
  logLevel: "info"
})

const logging = Logging.layer.pipe(Layer.provide(SettingsLive.layer(config)))

describe("Logging", () => {
  it.effect("lines reach stderr whole and in order: long ones, non-ASCII ones, access lines among the others", () =>
    capturingStderr((writes) =>
      Effect.gen(function*() {
        const long = "x".repeat(100_000)
        yield* Effect.scoped(Effect.gen(function*() {
          const accessLog = yield* AccessLog
          yield* Effect.logInfo("first")
          yield* accessLog.write({
            client: "127.0.0.1:5000",
            backend: "127.0.0.1:6000",
            backend_local: "127.0.0.1:7000",
            bytes_in: 1,
            bytes_out: 2,
            duration_ms: 3,
            end: "done"
          })
          yield* Effect.logInfo(long)
          yield* Effect.logInfo("naïve ✓ 🚀")
          for (let i = 0; i < 2_000; i++) yield* Effect.logInfo(`line ${i}`)
        }).pipe(Effect.provide(logging)))
        const lines = writes.join("").split("\n")
        assert.strictEqual(lines.pop(), "", "the output ends with a newline")
        assert.match(lines[0]!, / message=first$/)
        assert.match(lines[1]!, / message="connection closed" client=127\.0\.0\.1:5000 .* end=done$/)
        assert.isTrue(lines[2]!.endsWith(` message=${long}`))
        assert.match(lines[3]!, / message="naïve ✓ 🚀"$/)
        assert.deepStrictEqual(lines.slice(4).map((line) => line.replace(/.* message="(.*)"$/, "$1")), Array.from({ length: 2_000 }, (_, i) => `line ${i}`))
        assert.isAbove(writes.length, 1, "written in several batches")
      })
    ))
})
