/**
 * Operating the backends with the built CLI over loopback: the admin write
 * API (drain, maintenance, ready, weight), slow start, backups and closing
 * the connections of a backend that fails.
 */
import { mkdtempSync, rmSync, writeFileSync } from "node:fs"
import type * as Net from "node:net"
import { tmpdir } from "node:os"
import { join } from "node:path"
import { assert, describe, it } from "@effect/vitest"
import { Effect, Option } from "effect"
import { type CliProcess, listeningPort, spawnCli } from "./cli.ts"
import { connect, echoServer, eventually, exchange, readAll, server, type TestServer, until } from "./helpers.ts"

const token = "s3cret-token-0123456789"

/** A scratch directory with the token file, removed when the scope ends. */
const tokenFile = Effect.acquireRelease(
  Effect.sync(() => {
    const dir = mkdtempSync(join(tmpdir(), "tcp-proxy-admin-"))
    writeFileSync(join(dir, "token"), `${token}\n`)
    return dir
  }),
  (dir) => Effect.sync(() => rmSync(dir, { recursive: true, force: true }))
).pipe(Effect.map((dir) => join(dir, "token")))

/** The CLI with an admin endpoint; its data port and admin port. */
const proxyWith = (args: ReadonlyArray<string>) =>
  Effect.gen(function*() {
    const cli = yield* spawnCli(["--laddr", "127.0.0.1:0", "--metrics-addr", "127.0.0.1:0", ...args])
    const port = yield* listeningPort(cli)
    const admin = yield* eventually(
      "the admin endpoint",
      Effect.sync(() => Option.map(Option.fromNullishOr(/admin endpoint on http:\/\/127\.0\.0\.1:(\d+)/.exec(cli.stderr())), (m) => Number(m[1])))
    )
    return { cli, port, admin }
  })

interface Answer {
  readonly status: number
  readonly body: string
}

/** One HTTP request to the admin endpoint. */
const call = (admin: number, method: string, path: string, options: { readonly token?: string; readonly body?: string } = {}) =>
  Effect.promise(async (): Promise<Answer> => {
    const response = await fetch(`http://127.0.0.1:${admin}${path}`, {
      method,
      headers: options.token === undefined ? {} : { authorization: `Bearer ${options.token}` },
      ...(options.body === undefined ? {} : { body: options.body })
    })
    return { status: response.status, body: await response.text() }
  })

/** Which backend (by its reply tag) serves each of `count` connections. */
const servedBy = (port: number, count: number) =>
  Effect.forEach(Array.from({ length: count }), () => Effect.map(exchange(port, "?"), (reply) => reply.data.toString().split(":")[0]!))

const tally = (tags: ReadonlyArray<string>) => {
  const counts: Record<string, number> = {}
  for (const tag of tags) counts[tag] = (counts[tag] ?? 0) + 1
  return counts
}

/** A `/metrics` series' value. */
const metric = (admin: number, series: string) =>
  Effect.map(call(admin, "GET", "/metrics"), (answer) => {
    const line = answer.body.split("\n").find((l) => l.startsWith(`${series} `))
    return line === undefined ? 0 : Number(line.slice(series.length + 1))
  })

/** A backend's entry in `/backends`. */
const entryOf = (admin: number, address: string) =>
  Effect.map(call(admin, "GET", "/backends"), (answer) => {
    const listed: { readonly backends: ReadonlyArray<{ readonly address: string; readonly weight: number; readonly state: string }> } =
      JSON.parse(answer.body)
    return listed.backends.find((entry) => entry.address === address)
  })

/** A held client connection served by the backend tagged `tag`, checked with one exchange of bytes. */
const heldOn = (port: number, tag: string) =>
  Effect.gen(function*() {
    for (let i = 0; i < 10; i++) {
      const socket = yield* connect(port)
      const first = yield* Effect.callback<string>((resume) => {
        socket.once("data", (chunk: Buffer) => resume(Effect.succeed(chunk.toString())))
        socket.write("hello")
      })
      if (first.startsWith(`${tag}:`)) return socket
      socket.destroy()
    }
    return yield* Effect.die(`no connection reached ${tag}`)
  })

/** Stops a test backend listening at once (its open connections stay), so that its checks fail. */
const stopListening = (backend: TestServer) => Effect.sync(() => void backend.server.close())

const warnOf = (cli: CliProcess, text: string) => () => cli.stderr().includes(text)

describe("admin write API", () => {
  it.live("drain: no new connection goes to the backend, a held one keeps relaying; ready puts it back", () =>
    Effect.gen(function*() {
      const a = yield* echoServer("a:")
      const b = yield* echoServer("b:")
      const { admin, cli, port } = yield* proxyWith(["--admin-token-file", yield* tokenFile, "--lb", "round-robin", a.address, b.address])
      const held = yield* heldOn(port, "a")
      const drained = yield* call(admin, "POST", `/backends/${a.address}/drain`, { token })
      assert.strictEqual(drained.status, 200)
      assert.deepInclude(JSON.parse(drained.body), { address: a.address, admin: "drain" })
      assert.deepStrictEqual(yield* servedBy(port, 4), ["b", "b", "b", "b"])
      const more = readAll(held)
      held.end("more")
      assert.strictEqual((yield* more).data.toString(), "a:more")
      yield* until("the log line", warnOf(cli, `backend ${a.address} admin drain`))
      assert.strictEqual((yield* call(admin, "POST", `/backends/${a.address}/ready`, { token })).status, 200)
      assert.deepStrictEqual(tally(yield* servedBy(port, 4)), { a: 2, b: 2 })
      assert.notInclude(cli.stderr(), token, "the token never shows in the logs")
    }))

  it.live("maintenance stops the backend's checks and takes it out; ready checks it again", () =>
    Effect.gen(function*() {
      const a = yield* echoServer("a:")
      const b = yield* echoServer("b:")
      const { admin, port } = yield* proxyWith([
        "--admin-token-file", yield* tokenFile, "--lb", "round-robin", "--health-interval", "100ms", a.address, b.address
      ])
      const checks = (backend: TestServer) => metric(admin, `tcp_proxy_health_checks_total{backend="${backend.address}",result="success"}`)
      assert.strictEqual((yield* call(admin, "POST", `/backends/${a.address}/maintenance`, { token })).status, 200)
      const aBefore = yield* checks(a)
      const bBefore = yield* checks(b)
      yield* eventually("b to be checked 5 more times", Effect.map(checks(b), (n) => n >= bBefore + 5 ? Option.some(n) : Option.none()))
      assert.strictEqual(yield* checks(a), aBefore, "no check of a in maintenance")
      assert.deepStrictEqual(yield* servedBy(port, 3), ["b", "b", "b"])
      assert.strictEqual((yield* call(admin, "POST", `/backends/${a.address}/ready`, { token })).status, 200)
      yield* eventually("a to be checked again", Effect.map(checks(a), (n) => n > aBefore ? Option.some(n) : Option.none()))
    }))

  it.live("a weight set through the API moves the split (round-robin)", () =>
    Effect.gen(function*() {
      const a = yield* echoServer("a:")
      const b = yield* echoServer("b:")
      const { admin, port } = yield* proxyWith(["--admin-token-file", yield* tokenFile, "--lb", "round-robin", a.address, b.address])
      const set = yield* call(admin, "PUT", `/backends/${a.address}/weight`, { token, body: JSON.stringify({ weight: 3 }) })
      assert.strictEqual(set.status, 200)
      assert.strictEqual(JSON.parse(set.body).weight, 3)
      assert.deepStrictEqual(tally(yield* servedBy(port, 8)), { a: 6, b: 2 })
      assert.strictEqual((yield* metric(admin, `tcp_proxy_backend_weight{backend="${a.address}"}`)), 3)
    }))

  it.live("answers 401 without the right token, 404 for an unknown backend, 400 for a bad body, 403 when off", () =>
    Effect.gen(function*() {
      const a = yield* echoServer("a:")
      const { admin, cli } = yield* proxyWith(["--admin-token-file", yield* tokenFile, a.address])
      const path = `/backends/${a.address}/drain`
      assert.strictEqual((yield* call(admin, "POST", path)).status, 401)
      assert.strictEqual((yield* call(admin, "POST", path, { token: "wrong" })).status, 401)
      assert.strictEqual((yield* call(admin, "POST", path, { token: `${token}x` })).status, 401)
      assert.strictEqual((yield* call(admin, "POST", "/backends/127.0.0.1:1/drain", { token })).status, 404)
      for (const body of ["", "{", JSON.stringify({ weight: 0 }), JSON.stringify({ weight: 1.5 }), JSON.stringify({ w: 2 })]) {
        const answer = yield* call(admin, "PUT", `/backends/${a.address}/weight`, { token, body })
        assert.strictEqual(answer.status, 400, body)
        assert.property(JSON.parse(answer.body), "error")
      }
      assert.strictEqual((yield* entryOf(admin, a.address))?.weight, 1, "nothing changed")
      assert.notInclude(cli.stderr(), token)
      const off = yield* proxyWith([a.address])
      assert.strictEqual((yield* call(off.admin, "POST", path, { token })).status, 403)
    }))
})

describe("slow start, backups, closing on failure", () => {
  it.live("slow start: a backend back from UNHEALTHY gets far less than its share at first, its full share at the end", () =>
    Effect.gen(function*() {
      const a = yield* echoServer("a:")
      let b = yield* echoServer("b:")
      const { admin, port } = yield* proxyWith([
        "--lb", "round-robin", "--slow-start", "8s", "--health-interval", "100ms",
        "--healthy-threshold", "1", "--unhealthy-threshold", "1", a.address, b.address
      ])
      const state = () => Effect.map(entryOf(admin, b.address), (entry) => entry?.state)
      yield* stopListening(b)
      yield* eventually("b to turn UNHEALTHY", Effect.map(state(), (s) => s === "UNHEALTHY" ? Option.some(s) : Option.none()))
      b = yield* server((socket) => socket.on("data", (chunk) => socket.write(`b:${chunk}`)).on("end", () => socket.end()), b.port)
      yield* eventually("b to turn HEALTHY", Effect.map(state(), (s) => s === "HEALTHY" ? Option.some(s) : Option.none()))
      const early = tally(yield* servedBy(port, 20))
      assert.isBelow(early["b"] ?? 0, 5, `right after recovery b has far less than half: ${JSON.stringify(early)}`)
      yield* eventually(
        "b's full weight",
        Effect.map(entryOf(admin, b.address), (entry) => entry?.weight === 1 ? Option.some(true) : Option.none()),
        750
      )
      assert.deepStrictEqual(tally(yield* servedBy(port, 20)), { a: 10, b: 10 })
    }), { timeout: 30_000 })

  it.live("backups take over when the primaries are down and hand back when one recovers", () =>
    Effect.gen(function*() {
      let a = yield* echoServer("a:")
      const spare = yield* echoServer("spare:")
      const dir = yield* Effect.acquireRelease(
        Effect.sync(() => mkdtempSync(join(tmpdir(), "tcp-proxy-backup-"))),
        (path) => Effect.sync(() => rmSync(path, { recursive: true, force: true }))
      )
      const file = join(dir, "proxy.yaml")
      writeFileSync(file, `backends:\n  - ${a.address}\n  - { address: "${spare.address}", backup: true }\n`)
      const { admin, port } = yield* proxyWith([
        "--config", file, "--health-interval", "100ms", "--healthy-threshold", "1", "--unhealthy-threshold", "1"
      ])
      assert.deepStrictEqual(yield* servedBy(port, 3), ["a", "a", "a"])
      assert.deepInclude((yield* call(admin, "GET", "/backends")).body, `"backup":true`)
      yield* stopListening(a)
      yield* eventually(
        "the backup to take over",
        servedBy(port, 1).pipe(
          Effect.map(([tag]) => tag === "spare" ? Option.some(true) : Option.none()),
          Effect.orElseSucceed(() => Option.none())
        )
      )
      a = yield* server((socket) => socket.on("data", (chunk) => socket.write(`a:${chunk}`)).on("end", () => socket.end()), a.port)
      yield* eventually(
        "the primary to take back",
        servedBy(port, 1).pipe(
          Effect.map(([tag]) => tag === "a" ? Option.some(true) : Option.none()),
          Effect.orElseSucceed(() => Option.none())
        )
      )
      assert.deepStrictEqual(yield* servedBy(port, 3), ["a", "a", "a"])
    }), { timeout: 30_000 })

  it.live("--close-on-unhealthy closes a held connection when its backend turns UNHEALTHY (end=backend_down)", () =>
    Effect.gen(function*() {
      const a = yield* echoServer("a:")
      const { cli, port } = yield* proxyWith([
        "--close-on-unhealthy", "--health-interval", "100ms", "--unhealthy-threshold", "1", a.address
      ])
      const held: Net.Socket = yield* heldOn(port, "a")
      const closed = readAll(held)
      yield* stopListening(a)
      const outcome = yield* closed
      assert.isDefined(outcome.error, "the client is reset")
      yield* until("the log line", () => /end=backend_down/.test(cli.stderr()))
      // Without the flag, the connection is left to run.
      const b = yield* echoServer("b:")
      const plain = yield* proxyWith(["--health-interval", "100ms", "--unhealthy-threshold", "1", b.address])
      const kept = yield* heldOn(plain.port, "b")
      yield* stopListening(b)
      yield* until("b to turn UNHEALTHY", warnOf(plain.cli, `backend ${b.address} now UNHEALTHY`))
      const reply = readAll(kept)
      kept.end("still")
      assert.strictEqual((yield* reply).data.toString(), "b:still")
    }), { timeout: 30_000 })
})
