import { mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs"
import { tmpdir } from "node:os"
import { join } from "node:path"
import { assert, describe, it } from "@effect/vitest"
import { Effect, Layer, Logger, Option, Queue, Stream } from "effect"
import * as Reload from "../../src/cli/Reload.ts"
import type { ProxyConfig } from "../../src/domain/Config.ts"

/** A config file in a directory of its own, removed when the scope ends. */
const configFile = (text: string) =>
  Effect.acquireRelease(
    Effect.sync(() => {
      const dir = mkdtempSync(join(tmpdir(), "tcp-proxy-reload-"))
      const file = join(dir, "proxy.yaml")
      writeFileSync(file, text)
      return file
    }),
    (file) => Effect.sync(() => rmSync(join(file, ".."), { recursive: true, force: true }))
  )

/** The reload layer over `file`, SIGHUPs from a queue, and `apply`; the log lines go to `lines`. */
const reloading = (file: string, apply: (config: ProxyConfig) => Effect.Effect<void>, lines: Array<string>) =>
  Effect.gen(function*() {
    const hangups = yield* Queue.unbounded<NodeJS.Signals>()
    const capture = Logger.layer([Logger.make<unknown, void>(({ message }) => {
      lines.push(Array.isArray(message) ? message.join(" ") : String(message))
    })])
    const text = readFileSync(file, "utf8")
    yield* Layer.build(Reload.on(Stream.fromQueue(hangups), Option.some({ path: file, text }), {}, [], apply).pipe(Layer.provide(capture)))
    return hangups
  })

describe("Reload", () => {
  it.live("a reload that dies is logged as one line, and the next one is still handled", () =>
    Effect.gen(function*() {
      const file = yield* configFile(`backends: ["127.0.0.1:8000"]\n`)
      const lines: Array<string> = []
      const applied: Array<ProxyConfig> = []
      const apply = (config: ProxyConfig) =>
        Effect.suspend(() => {
          applied.push(config)
          return applied.length === 1 ? Effect.die(new Error("boom\nat somewhere")) : Effect.void
        })
      const hangups = yield* reloading(file, apply, lines)
      Queue.offerUnsafe(hangups, "SIGHUP")
      yield* Effect.sleep("1 millis").pipe(Effect.repeat({ until: () => lines.some((line) => line.startsWith("config reload failed")) }))
      assert.include(lines, "config reload failed: boom")
      Queue.offerUnsafe(hangups, "SIGHUP")
      yield* Effect.sleep("1 millis").pipe(Effect.repeat({ until: () => applied.length === 2 }))
      assert.strictEqual(lines.filter((line) => line.startsWith("config reload failed")).length, 1)
    }), { timeout: 10_000 })

  it.live("a change on disk is read once the file has stopped changing: a half-written file is never tried", () =>
    Effect.gen(function*() {
      const complete = `backends: ["127.0.0.1:8000", "127.0.0.1:8001"]\ntimeout: 2s\n`
      const file = yield* configFile(`backends: ["127.0.0.1:8000"]\n`)
      const lines: Array<string> = []
      const applied: Array<ProxyConfig> = []
      yield* reloading(file, (config) => Effect.sync(() => applied.push(config)), lines)
      // A slow writer: half the file, a pause longer than the change debounce, then the rest.
      writeFileSync(file, complete.slice(0, 20))
      yield* Effect.sleep("300 millis")
      writeFileSync(file, complete)
      yield* Effect.sleep("5 millis").pipe(Effect.repeat({ until: () => applied.length > 0 || lines.length > 0 }))
      assert.deepStrictEqual(lines, [])
      assert.deepStrictEqual(applied[0]?.backends.map((backend) => backend.address), ["127.0.0.1:8000", "127.0.0.1:8001"])
    }), { timeout: 10_000 })
})
