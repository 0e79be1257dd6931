import { mkdtempSync, renameSync, rmSync, writeFileSync } from "node:fs"
import { tmpdir } from "node:os"
import { join } from "node:path"
import { assert, describe, it } from "@effect/vitest"
import { Effect, Option } from "effect"
import { type CliProcess, listeningPort, runCli, spawnCli } from "./cli.ts"
import { connect, deadPort, echoServer, eventually, exchange, readAll, relayed, until } from "./helpers.ts"

/** A scratch directory for config files, removed when the scope ends. */
const scratch = Effect.acquireRelease(
  Effect.sync(() => mkdtempSync(join(tmpdir(), "tcp-proxy-config-"))),
  (dir) => Effect.sync(() => rmSync(dir, { recursive: true, force: true }))
)

const write = (path: string, text: string) => Effect.sync(() => writeFileSync(path, text))

/** A config file with `text` in a scratch directory, and the CLI started on it (plus `args`). */
const proxyWithConfig = (text: string, args: ReadonlyArray<string> = []) =>
  Effect.gen(function*() {
    const path = join(yield* scratch, "proxy.yaml")
    yield* write(path, text)
    const cli = yield* spawnCli(["--config", path, "--laddr", "127.0.0.1:0", ...args])
    return { cli, path, port: yield* listeningPort(cli) }
  })

/** Which backend (by its reply tag) serves each of `count` connections. */
const servedBy = (port: number, count: number) =>
  Effect.gen(function*() {
    const tags: Array<string> = []
    for (let i = 0; i < count; i++) tags.push((yield* exchange(port, "?")).data.toString().split(":")[0]!)
    return tags
  })

/** Sends SIGHUP and waits for the outcome line (reloaded or failed) number `n`. */
const hangup = (cli: CliProcess, n: number) =>
  Effect.gen(function*() {
    cli.child.kill("SIGHUP")
    yield* until(`reload ${n}`, () => (cli.stderr().match(/config reload(ed| failed)/g) ?? []).length >= n)
  })

describe("config file", () => {
  it.live("a YAML file and a JSON file configure the proxy, flags override the file", () =>
    Effect.gen(function*() {
      const dir = yield* scratch
      const a = yield* echoServer("a:")
      const b = yield* echoServer("b:")
      const yaml = join(dir, "proxy.yaml")
      yield* write(yaml, `# the proxy\nladdr: 127.0.0.1:1\nlb: ROUND-ROBIN\nretries: 0\nbackends:\n  - ${a.address}\n  - { address: "${b.address}", weight: 1 }\n`)
      const fromYaml = yield* spawnCli(["--config", yaml, "--laddr", "127.0.0.1:0"])
      const port = yield* listeningPort(fromYaml)
      assert.deepStrictEqual((yield* servedBy(port, 4)).sort(), ["a", "a", "b", "b"])
      const json = join(dir, "proxy.json")
      yield* write(json, JSON.stringify({ laddr: "127.0.0.1:0", lb: "round-robin", backends: [a.address] }))
      const fromJson = yield* spawnCli(["--config", json, b.address])
      const jsonPort = yield* listeningPort(fromJson)
      assert.deepStrictEqual((yield* servedBy(jsonPort, 4)).sort(), ["a", "a", "b", "b"], "command-line backends are added")
    }))

  it.live("a bad file at start exits non-zero with one line: file, where, why", () =>
    Effect.gen(function*() {
      const dir = yield* scratch
      const cases: ReadonlyArray<readonly [string, string, RegExp]> = [
        ["unknown.yaml", "timeuot: 3s\nbackends: [127.0.0.1:1]\n", /unknown\.yaml: unknown key "timeuot"/],
        ["nested.yaml", "backends:\n  - { address: 127.0.0.1:1, wieght: 2 }\n", /nested\.yaml: at backends\[0\]: unknown key "wieght"/],
        ["weight.yaml", "backends:\n  - { address: 127.0.0.1:1, weight: 0 }\n", /weight\.yaml: at backends\[0\]\.weight: expected a positive integer/],
        ["duration.yaml", "timeout: soon\nbackends: [127.0.0.1:1]\n", /duration\.yaml: at timeout: expected a duration/],
        ["syntax.yaml", "backends: [127.0.0.1:1\n", /syntax\.yaml: line \d+, column \d+/],
        ["broken.json", "{ \"backends\": [ }", /broken\.json: /]
      ]
      for (const [name, text, pattern] of cases) {
        const path = join(dir, name)
        yield* write(path, text)
        const result = yield* runCli(["--config", path])
        assert.notStrictEqual(result.code, 0)
        const lines = result.stderr.trim().split("\n")
        assert.strictEqual(lines.length, 1, result.stderr)
        assert.match(lines[0]!, pattern)
      }
      const missing = yield* runCli(["--config", join(dir, "nope.yaml")])
      assert.match(missing.stderr, /nope\.yaml: cannot read/)
    }), { timeout: 60_000 })

  it.live("weights from the file shape the traffic", () =>
    Effect.gen(function*() {
      const dir = yield* scratch
      const a = yield* echoServer("a:")
      const b = yield* echoServer("b:")
      const path = join(dir, "weights.yaml")
      yield* write(path, `lb: round-robin\nbackends:\n  - { address: "${a.address}", weight: 3 }\n  - ${b.address}\n`)
      const cli = yield* spawnCli(["--config", path, "--laddr", "127.0.0.1:0"])
      const port = yield* listeningPort(cli)
      const tags = yield* servedBy(port, 8)
      assert.deepStrictEqual(tags.filter((tag) => tag === "a").length, 6)
      assert.deepStrictEqual(tags.filter((tag) => tag === "b").length, 2)
    }))
})

describe("reload on SIGHUP", () => {
  it.live("adds a backend, which then receives traffic", () =>
    Effect.gen(function*() {
      const a = yield* echoServer("a:")
      const b = yield* echoServer("b:")
      const { cli, path, port } = yield* proxyWithConfig(`lb: round-robin\nbackends: ["${a.address}"]\n`)
      assert.deepStrictEqual(yield* servedBy(port, 2), ["a", "a"])
      yield* write(path, `lb: round-robin\nbackends: ["${a.address}", "${b.address}"]\n`)
      yield* hangup(cli, 1)
      assert.match(cli.stderr(), new RegExp(`config reloaded.*added=${b.address}`))
      assert.deepStrictEqual((yield* servedBy(port, 4)).sort(), ["a", "a", "b", "b"])
    }))

  it.live("a change to the file on disk is picked up without a signal", () =>
    Effect.gen(function*() {
      const a = yield* echoServer("a:")
      const b = yield* echoServer("b:")
      const { cli, path, port } = yield* proxyWithConfig(`lb: round-robin\nbackends: ["${a.address}"]\n`)
      // Replace the file, as editors and Kubernetes do: write a new one and rename it over the old.
      yield* write(`${path}.new`, `lb: round-robin\nbackends: ["${b.address}"]\n`)
      yield* Effect.sync(() => renameSync(`${path}.new`, path))
      yield* until("the reload", () => cli.stderr().includes("config reloaded"))
      assert.match(cli.stderr(), new RegExp(`added=${b.address}.*removed=${a.address}`))
      assert.deepStrictEqual(yield* servedBy(port, 2), ["b", "b"])
    }))

  it.live("removes a backend: its open connection survives until it closes; re-weights", () =>
    Effect.gen(function*() {
      const a = yield* echoServer("a:")
      const b = yield* echoServer("b:")
      const { cli, path, port } = yield* proxyWithConfig(`lb: round-robin\nbackends: ["${b.address}"]\n`, ["--metrics-addr", "127.0.0.1:0"])
      const held = yield* connect(port)
      const received = readAll(held)
      held.write("first;")
      yield* relayed(b)
      yield* write(path, `lb: round-robin\nbackends: [{ address: "${a.address}", weight: 3 }]\n`)
      yield* hangup(cli, 1)
      assert.match(cli.stderr(), new RegExp(`added=${a.address}.*removed=${b.address}`))
      assert.deepStrictEqual(yield* servedBy(port, 2), ["a", "a"])
      const admin = Number(/admin endpoint on http:\/\/127\.0\.0\.1:(\d+)/.exec(cli.stderr())![1])
      const listed = yield* Effect.promise(() => fetch(`http://127.0.0.1:${admin}/backends`).then((r) => r.text()))
      assert.deepStrictEqual(
        JSON.parse(listed).backends.map((x: { address: string; weight: number }) => [x.address, x.weight]),
        [[a.address, 3]]
      )
      // The connection to the removed backend still carries bytes both ways.
      held.end("second")
      assert.strictEqual((yield* received).data.toString(), "b:first;b:second")
    }))

  it.live("a broken file is rejected with one error line and the running configuration stays", () =>
    Effect.gen(function*() {
      const a = yield* echoServer("a:")
      const { cli, path, port } = yield* proxyWithConfig(`backends: ["${a.address}"]\n`)
      yield* write(path, "backends: [\n")
      yield* hangup(cli, 1)
      assert.match(cli.stderr(), /level=ERROR .*config reload failed: .*proxy\.yaml: line \d+/)
      yield* write(path, `backends: ["${a.address}"]\nbogus: 1\n`)
      yield* hangup(cli, 2)
      assert.match(cli.stderr(), /config reload failed: .*unknown key \\"bogus\\"/)
      assert.deepStrictEqual(yield* servedBy(port, 2), ["a", "a"])
    }))

  it.live("flags still override the file after a reload; a changed metrics-addr needs a restart", () =>
    Effect.gen(function*() {
      const dir = yield* scratch
      const a = yield* echoServer("a:")
      const path = join(dir, "proxy.yaml")
      yield* write(path, `retries: 0\nbackends: ["${a.address}"]\n`)
      // At warn level there is no `listening on` line: listen on a known free port and wait until it answers.
      const port = yield* deadPort
      const cli = yield* spawnCli(["--config", path, "--laddr", `127.0.0.1:${port}`, "--log-level", "warn"])
      yield* eventually(
        "the proxy to listen",
        Effect.scoped(connect(port)).pipe(Effect.as(Option.some(true)), Effect.catch(() => Effect.succeed(Option.none())))
      )
      // The file asks for debug logs, another listen address and an admin endpoint: the flags keep
      // warn and the listen address; the admin endpoint needs a restart.
      yield* write(path, `log-level: debug\nladdr: 127.0.0.1:1\nmetrics-addr: 127.0.0.1:0\nbackends: ["${a.address}"]\n`)
      cli.child.kill("SIGHUP")
      yield* until("the restart warning", () => cli.stderr().includes("metrics-addr changed: it takes effect after a restart"))
      assert.notInclude(cli.stderr(), "laddr changed")
      assert.notInclude(cli.stderr(), "level=DEBUG")
      assert.notInclude(cli.stderr(), "level=INFO")
    }))

  it.live("without --config, SIGHUP is logged and ignored", () =>
    Effect.gen(function*() {
      const a = yield* echoServer("a:")
      const cli = yield* spawnCli(["--laddr", "127.0.0.1:0", a.address])
      const port = yield* listeningPort(cli)
      cli.child.kill("SIGHUP")
      yield* until("the warning", () => cli.stderr().includes("SIGHUP ignored"))
      assert.match(cli.stderr(), /level=WARN .*SIGHUP ignored/)
      assert.deepStrictEqual(yield* servedBy(port, 1), ["a"])
    }))
})
