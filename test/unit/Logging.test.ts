import * as Fs from "node:fs"
import * as Os from "node:os"
import * as Path from "node:path"
import { assert, describe, it } from "@effect/vitest"
import { Effect, Layer, Result, Schedule } from "effect"
import * as Config from "../../src/domain/Config.ts"
import * as Logging from "../../src/layers/Logging.ts"
import * as SettingsLive from "../../src/layers/SettingsLive.ts"
import { type AccessEntry, AccessLog } from "../../src/services/AccessLog.ts"
import type { Settings } from "../../src/services/Settings.ts"

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

const settings = SettingsLive.layer(config)

/** The first access line {@link logSome} writes. */
const closed: AccessEntry = {
  client: "127.0.0.1:5000",
  backend: "127.0.0.1:6000",
  backend_local: "127.0.0.1:7000",
  bytes_in: 1,
  bytes_out: 2,
  duration_ms: 3,
  end: "done"
}

/** Logs the lines every test checks: a short one, an access line, a long one, a non-ASCII one, then 2,000 more. */
const logSome = Effect.gen(function*() {
  const accessLog = yield* AccessLog
  yield* Effect.logInfo("first")
  yield* accessLog.write(closed)
  yield* accessLog.write({
    client: "[::1]:5001",
    backend: undefined,
    backend_local: undefined,
    bytes_in: 0,
    bytes_out: 0,
    duration_ms: 0,
    end: "no_backend"
  })
  yield* Effect.logInfo(long)
  yield* Effect.logInfo("naïve ✓ 🚀")
  for (let i = 0; i < 2_000; i++) yield* Effect.logInfo(`line ${i}`)
})

const long = "x".repeat(100_000) + "é🚀".repeat(30_000)

/** What every test expects of the output of {@link logSome}. */
const assertLogged = (output: string) => {
  const lines = output.split("\n")
  assert.strictEqual(lines.pop(), "", "the output ends with a newline")
  assert.match(lines[0]!, / message=first$/)
  assert.match(lines[1]!, /^timestamp=\S+ level=INFO fiber=#\d+ message="connection closed" client=127\.0\.0\.1:5000 backend=127\.0\.0\.1:6000 backend_local=127\.0\.0\.1:7000 bytes_in=1 bytes_out=2 duration_ms=3 end=done$/)
  assert.match(lines[2]!, / message="connection closed" client=\[::1\]:5001 bytes_in=0 bytes_out=0 duration_ms=0 end=no_backend$/)
  assert.isTrue(lines[3]!.endsWith(` message=${long}`))
  assert.match(lines[4]!, / message="naïve ✓ 🚀"$/)
  assert.deepStrictEqual(lines.slice(5).map((line) => line.replace(/.* message="(.*)"$/, "$1")), Array.from({ length: 2_000 }, (_, i) => `line ${i}`))
}

/** Runs {@link logSome} with the log thread writing to a file, under `settings`; the file's text once the logger closed. */
const loggedThroughThread = (settings: Layer.Layer<Settings>) =>
  Effect.gen(function*() {
    const dir = Fs.mkdtempSync(Path.join(Os.tmpdir(), "logging-"))
    const file = Path.join(dir, "stderr.log")
    const fd = Fs.openSync(file, "w")
    yield* Effect.scoped(logSome.pipe(Effect.provide(Logging.layerThreaded(fd).pipe(Layer.provide(settings)))))
    Fs.closeSync(fd)
    const output = Fs.readFileSync(file, "utf8")
    Fs.rmSync(dir, { recursive: true })
    return output
  })

describe("Logging", () => {
  it.effect("lines written from this thread reach stderr whole and in order: long ones, non-ASCII ones, access lines among the others", () =>
    capturingStderr((writes) =>
      Effect.gen(function*() {
        yield* Effect.scoped(logSome.pipe(Effect.provide(Logging.layerControl.pipe(Layer.provide(settings)))))
        assertLogged(writes.join(""))
        assert.isAbove(writes.length, 1, "written in several batches")
      })
    ))

  it.effect("at info, a log thread writes the same lines, whole and in order, all of them by the time the logger closes", () =>
    Effect.gen(function*() {
      const writes: Array<string> = []
      const output = yield* capturingStderr((captured) =>
        loggedThroughThread(settings).pipe(Effect.tap(() => Effect.sync(() => writes.push(...captured))))
      )
      assertLogged(output)
      assert.deepStrictEqual(writes, [], "nothing went through this thread's stderr")
    }))

  it.effect("the JSON format holds from the log thread too", () =>
    Effect.gen(function*() {
      const json = SettingsLive.layer(Config.make({ ...config, logFormat: "json" }))
      const lines = (yield* loggedThroughThread(json)).trimEnd().split("\n").map((line) => JSON.parse(line))
      assert.strictEqual(lines.length, 2_005)
      assert.deepInclude(lines[1], { level: "INFO", message: "connection closed", ...closed })
      assert.notProperty(lines[2], "backend")
      assert.strictEqual(lines[3].message, long)
    }))

  it.live("a log thread that fails: its lines and every later one are written from this thread, after one warn line saying so", () =>
    capturingStderr((writes) =>
      Effect.gen(function*() {
        const failing = new URL(`data:text/javascript,${encodeURIComponent("throw new Error('no room to start')")}`)
        const warning = "the log thread failed (no room to start): lines are written from the serving thread from now on"
        yield* Effect.scoped(Effect.gen(function*() {
          yield* logSome
          // The thread fails as it starts, after taking some of the lines: wait until this thread has said so.
          yield* Effect.suspend(() => writes.join("").includes(warning) ? Effect.void : Effect.fail("not yet")).pipe(
            Effect.retry(Schedule.spaced("10 millis")),
            Effect.timeout("5 seconds")
          )
          yield* Effect.logInfo("after")
        }).pipe(Effect.provide(Logging.layerThreaded(2, failing).pipe(Layer.provide(settings)))))
        const lines = writes.join("").split("\n")
        const warnings = lines.filter((line) => line.includes(warning))
        assert.strictEqual(warnings.length, 1)
        assert.match(warnings[0]!, /level=WARN/)
        assertLogged(lines.filter((line) => !line.includes(warning) && !line.endsWith(" message=after")).join("\n"))
        assert.isTrue(lines.at(-2)!.endsWith(" message=after"), "a line logged after the failure comes last")
      })
    ))
})
