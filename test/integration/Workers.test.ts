/**
 * `--workers N` with the built CLI over loopback: connections spread over
 * the workers, one view of the whole proxy (metrics, per-IP limits, health),
 * drains, reloads and replaced workers.
 */
import { copyFileSync, mkdtempSync, renameSync, rmSync, writeFileSync } from "node:fs"
import type * as Net from "node:net"
import { tmpdir } from "node:os"
import { join } from "node:path"
import { fileURLToPath } from "node:url"
import { assert, describe, it } from "@effect/vitest"
import { Effect, Option } from "effect"
import { type CliProcess, listeningPort, runCli, spawnCli } from "./cli.ts"
import { connect, deadPort, echoServer, eventually, exchange, readAtLeast, until } from "./helpers.ts"

const token = "workers-token-0123456789"

const fixture = (name: string) => fileURLToPath(new URL(`../fixtures/tls/${name}`, import.meta.url))

/** A scratch directory, removed when the scope ends. */
const scratch = Effect.acquireRelease(
  Effect.sync(() => mkdtempSync(join(tmpdir(), "tcp-proxy-workers-"))),
  (dir) => Effect.sync(() => rmSync(dir, { recursive: true, force: true }))
)

/** A scratch directory holding the write API's token file; its path. */
const tokenFile = Effect.map(scratch, (dir) => {
  writeFileSync(join(dir, "token"), token)
  return join(dir, "token")
})

/** `POST /workers/N/restart` with the token; the answer's status. */
const restart = (admin: number, worker: number) =>
  Effect.promise(() =>
    fetch(`http://127.0.0.1:${admin}/workers/${worker}/restart`, { method: "POST", headers: { authorization: `Bearer ${token}` } })
      .then((answer) => answer.status)
  )

/** The CLI with two workers and an admin endpoint; its data port and admin port. */
const proxyWith = (args: ReadonlyArray<string>) =>
  Effect.gen(function*() {
    const cli = yield* spawnCli(["--laddr", "127.0.0.1:0", "--metrics-addr", "127.0.0.1:0", "--workers", "2", ...args])
    const port = yield* listeningPort(cli)
    const admin = yield* eventually(
      "the admin endpoint",
      Effect.sync(() => Option.map(Option.fromNullishOr(/admin endpoint on http:\/\/127\.0\.0\.1:(\d+)/.exec(cli.stderr())), (m) => Number(m[1])))
    )
    return { cli, port, admin }
  })

const get = (admin: number, path: string) => Effect.promise(() => fetch(`http://127.0.0.1:${admin}${path}`).then((r) => r.text()))

/** The value of one series in `/metrics`, or undefined. */
const metric = (admin: number, series: string) =>
  Effect.map(get(admin, "/metrics"), (text) => {
    const line = text.split("\n").find((l) => l.startsWith(`${series} `))
    return line === undefined ? undefined : Number(line.slice(series.length + 1))
  })

/** Waits until a series of `/metrics` has `value`. */
const metricIs = (admin: number, series: string, value: number) =>
  eventually(
    `${series} to be ${value}`,
    Effect.map(metric(admin, series), (actual) => (actual === value ? Option.some(actual) : Option.none()))
  )

/** The `worker` fields of the access log lines so far. */
const workersOfClosed = (cli: CliProcess): Array<string> =>
  cli.stderr().split("\n").filter((line) => line.includes(`message="connection closed"`)).map((line) => /worker=(\d+)/.exec(line)?.[1] ?? "none")

const lines = (cli: CliProcess, pattern: RegExp) => cli.stderr().split("\n").filter((line) => pattern.test(line))

/** A held client connection through the proxy, proven to relay. */
const held = (port: number) =>
  Effect.gen(function*() {
    const socket = yield* connect(port)
    socket.write("hello")
    yield* readAtLeast(socket, 5)
    return socket
  })

/** Whether `socket` still relays: `text` sent, `reply` (the text by default) received in full. */
const stillRelays = (socket: Net.Socket, text: string, reply = text) =>
  Effect.callback<boolean>((resume) => {
    if (socket.closed || socket.destroyed || socket.readableEnded) return resume(Effect.succeed(false))
    let received = ""
    const done = (relays: boolean) => {
      socket.off("data", onData)
      socket.pause()
      resume(Effect.succeed(relays))
    }
    const onData = (chunk: Buffer) => {
      received += chunk.toString()
      if (received.length >= reply.length) done(received === reply)
    }
    socket.on("data", onData)
    // Cut: the proxy's end of the connection is gone (a FIN, as the client half-closes only, or a reset).
    socket.once("end", () => done(false))
    socket.once("error", () => done(false))
    socket.write(text, () => {})
    socket.resume()
  })

describe("--workers 2", () => {
  it.live("connections spread over both workers, and /metrics counts them all", () =>
    Effect.gen(function*() {
      const backend = yield* echoServer()
      const { admin, cli, port } = yield* proxyWith(["--log-level", "info", backend.address])
      const count = 40
      for (let i = 0; i < count; i++) assert.strictEqual((yield* exchange(port, `m${i}`)).data.toString(), `m${i}`)
      yield* until("every access line", () => workersOfClosed(cli).length === count)
      const seen = new Set(workersOfClosed(cli))
      assert.deepStrictEqual([...seen].sort(), ["1", "2"], "both workers served connections")
      // The control part's own lines carry no worker field.
      assert.notMatch(lines(cli, /listening on/)[0] ?? "", /worker=/)
      yield* metricIs(admin, "tcp_proxy_connections_total", count)
      yield* metricIs(admin, `tcp_proxy_backend_connections_total{backend="${backend.address}"}`, count)
      yield* metricIs(admin, "tcp_proxy_workers", 2)
      yield* metricIs(admin, "tcp_proxy_frontend_bytes_received_total", [...Array(count).keys()].reduce((n, i) => n + `m${i}`.length, 0))
      const text = yield* get(admin, "/metrics")
      assert.match(text, new RegExp(`tcp_proxy_connection_duration_seconds_count ${count}\\b`))
      // The dashboard's data too: its rates over the samples add up to every connection.
      yield* eventually("the dashboard to count every connection", Effect.map(get(admin, "/stats"), (text) => {
        const stats = JSON.parse(text) as { interval: number; totals: { connections: ReadonlyArray<number | null> } }
        const counted = stats.totals.connections.reduce<number>((sum, rate) => sum + (rate ?? 0) * stats.interval / 1000, 0)
        return Math.round(counted) === count ? Option.some(counted) : Option.none()
      }))
      // The SIGUSR1 snapshot too.
      cli.child.kill("SIGUSR1")
      yield* until("the snapshot", () => cli.stdout().includes("tcp_proxy_connections_total"))
      assert.include(cli.stdout(), `tcp_proxy_connections_total: ${count}\n`)
      assert.include(cli.stdout(), "tcp_proxy_workers: 2")
    }), { timeout: 60_000 })

  it.live("per-IP limits count the whole proxy", () =>
    Effect.gen(function*() {
      const backend = yield* echoServer()
      const { admin, port } = yield* proxyWith(["--max-connections-per-ip", "3", backend.address])
      const results: Array<"served" | "refused"> = []
      for (let i = 0; i < 10; i++) {
        const socket = yield* connect(port)
        // Served: the echo comes back; refused: the proxy ends the connection (a FIN, or a reset).
        let decided = false
        const decide = (result: "served" | "refused") => {
          if (!decided) results.push(result)
          decided = true
        }
        socket.on("error", () => decide("refused"))
        socket.once("data", () => decide("served"))
        socket.once("end", () => decide("refused"))
        socket.write("x")
      }
      yield* until("every connection served or refused", () => results.length === 10)
      assert.strictEqual(results.filter((r) => r === "served").length, 3)
      yield* metricIs(admin, `tcp_proxy_connections_rejected_total{reason="per_ip_limit"}`, 7)
    }), { timeout: 60_000 })

  it.live("a killed backend turns UNHEALTHY once, and no worker sends it traffic after", () =>
    Effect.gen(function*() {
      const a = yield* echoServer("a:")
      const b = yield* echoServer("b:")
      const { cli, port } = yield* proxyWith(["--lb", "round-robin", "--health-interval", "100ms", a.address, b.address])
      yield* Effect.sync(() => a.server.close())
      for (const socket of a.accepted) socket.destroy()
      yield* until("a UNHEALTHY", () => lines(cli, new RegExp(`backend ${a.address} now UNHEALTHY`)).length > 0)
      for (let i = 0; i < 20; i++) assert.strictEqual((yield* exchange(port, "?")).data.toString(), "b:?")
      const down = lines(cli, new RegExp(`backend ${a.address} now UNHEALTHY`))
      assert.strictEqual(down.length, 1, "said once, by the control part")
      assert.notMatch(down[0]!, /worker=/)
    }), { timeout: 60_000 })

  it.live("a failed dial in a worker counts toward the backend's thresholds", () =>
    Effect.gen(function*() {
      const live = yield* echoServer("live:")
      const dead = `127.0.0.1:${yield* deadPort}`
      // One check at start, then none for an hour: only real connections can find the backend down.
      const { cli, port } = yield* proxyWith([
        "--lb", "round-robin", "--health-interval", "1h", "--unhealthy-threshold", "3", "--retries", "1", dead, live.address
      ])
      for (let i = 0; i < 12 && lines(cli, /now UNHEALTHY/).length === 0; i++) {
        assert.strictEqual((yield* exchange(port, "?")).data.toString(), "live:?")
      }
      yield* until("the dead backend UNHEALTHY", () => lines(cli, new RegExp(`backend ${dead} now UNHEALTHY`)).length === 1)
      assert.match(lines(cli, /now UNHEALTHY/)[0]!, /reason=.*refused/)
    }), { timeout: 60_000 })

  it.live("SIGTERM drains held connections on every worker, then the process exits 0", () =>
    Effect.gen(function*() {
      const backend = yield* echoServer()
      const { cli, port } = yield* proxyWith(["--log-level", "info", "--grace", "30s", backend.address])
      // Enough connections that both workers hold some (all on one: a chance of 2 in 2^20).
      const sockets: Array<Net.Socket> = []
      for (let i = 0; i < 21; i++) sockets.push(yield* held(port))
      cli.child.kill("SIGTERM")
      yield* until("the drain to begin in both workers", () => lines(cli, /draining \d+ connection/).length === 2)
      for (const socket of sockets) assert.isTrue(yield* stillRelays(socket, "still here"))
      for (const socket of sockets) socket.end()
      assert.strictEqual(yield* cli.exit, 0)
      assert.deepStrictEqual([...new Set(workersOfClosed(cli))].sort(), ["1", "2"])
    }), { timeout: 60_000 })

  it.live("a second SIGTERM cuts the drain in every worker: held connections are reset, exit 0", () =>
    Effect.gen(function*() {
      const backend = yield* echoServer()
      const { cli, port } = yield* proxyWith(["--grace", "1h", backend.address])
      const sockets: Array<Net.Socket> = []
      for (let i = 0; i < 12; i++) sockets.push(yield* held(port))
      // Watched from now on: how each connection ends.
      const ended = sockets.map((socket) =>
        new Promise<string>((resolve) => {
          socket.once("error", (error: NodeJS.ErrnoException) => resolve(error.code ?? "error"))
          socket.once("end", () => resolve("end"))
          socket.resume()
        })
      )
      cli.child.kill("SIGTERM")
      yield* until("the drain to begin", () => lines(cli, /draining \d+ connection/).length > 0)
      cli.child.kill("SIGTERM")
      assert.strictEqual(yield* cli.exit, 0)
      assert.deepStrictEqual([...new Set(yield* Effect.promise(() => Promise.all(ended)))], ["ECONNRESET"])
    }), { timeout: 60_000 })

  it.live("a worker ended through the admin API is replaced, and the other worker's clients keep relaying", () =>
    Effect.gen(function*() {
      const backend = yield* echoServer()
      // Every connection slot of the one client address taken: the cut connections must give theirs back.
      const { admin, cli, port } = yield* proxyWith([
        "--admin-token-file", yield* tokenFile, "--max-connections-per-ip", "20", backend.address
      ])
      // Enough connections that both workers hold some (all on one: a chance of 2 in 2^20).
      const sockets: Array<Net.Socket> = []
      for (let i = 0; i < 20; i++) sockets.push(yield* held(port))
      // Open connections are counted over the workers, in /metrics and in /backends.
      yield* metricIs(admin, "tcp_proxy_connections_active", 20)
      yield* metricIs(admin, `tcp_proxy_backend_connections_active{backend="${backend.address}"}`, 20)
      const listed = JSON.parse(yield* get(admin, "/backends")) as { backends: Array<{ activeConnections: number }> }
      assert.strictEqual(listed.backends[0]?.activeConnections, 20)
      assert.strictEqual(yield* restart(admin, 1), 200)
      yield* until("the exit logged", () => lines(cli, /level=ERROR .*worker 1 exited: restarted through the admin API/).length === 1)
      // Worker 1's clients were cut; worker 2's relay on.
      const relaying = yield* Effect.forEach(sockets, (socket, i) => stillRelays(socket, `after ${i}`))
      assert.isAbove(relaying.filter(Boolean).length, 0)
      assert.isBelow(relaying.filter(Boolean).length, sockets.length)
      yield* metricIs(admin, "tcp_proxy_workers", 2)
      // The cut connections no longer count; the connections made so far still do.
      yield* metricIs(admin, "tcp_proxy_connections_active", relaying.filter(Boolean).length)
      // The listen address accepts throughout, the replacement serves, and the cut connections' per-IP places are free.
      for (let i = 0; i < 20; i++) assert.strictEqual((yield* exchange(port, `n${i}`)).data.toString(), `n${i}`)
      assert.strictEqual(yield* restart(admin, 9), 404)
    }), { timeout: 60_000 })

  it.live("SIGHUP reloads every worker, and no connection is dropped", () =>
    Effect.gen(function*() {
      const a = yield* echoServer("a:")
      const b = yield* echoServer("b:")
      const dir = yield* scratch
      const file = join(dir, "proxy.yaml")
      writeFileSync(file, `backends:\n  - ${a.address}\n`)
      const { cli, port } = yield* proxyWith(["--config", file])
      const sockets: Array<Net.Socket> = []
      for (let i = 0; i < 8; i++) sockets.push(yield* held(port))
      writeFileSync(file, `backends:\n  - ${b.address}\n`)
      cli.child.kill("SIGHUP")
      yield* until("the reload", () => lines(cli, /config reloaded/).length === 1)
      // Every new connection, whichever worker takes it, goes to the new backend.
      yield* eventually(
        "both workers reloaded",
        Effect.forEach(Array.from({ length: 20 }), () => exchange(port, "?")).pipe(
          Effect.map((replies) => replies.every((reply) => reply.data.toString() === "b:?") ? Option.some(true) : Option.none()),
          Effect.orElseSucceed(() => Option.none<boolean>())
        ),
        50
      )
      for (const [i, socket] of sockets.entries()) assert.isTrue(yield* stillRelays(socket, `kept ${i}`, `a:kept ${i}`))
      assert.strictEqual(lines(cli, /config reload failed/).length, 0)
    }), { timeout: 60_000 })

  it.live("a worker that cannot start is replaced after growing pauses, until it can", () =>
    Effect.gen(function*() {
      const backend = yield* echoServer()
      const dir = yield* scratch
      const cert = join(dir, "cert.pem")
      const key = join(dir, "key.pem")
      copyFileSync(fixture("default.pem"), cert)
      copyFileSync(fixture("default.key"), key)
      const { admin, cli } = yield* proxyWith([
        "--admin-token-file", yield* tokenFile, "--tls-cert", cert, "--tls-key", key, backend.address
      ])
      // Its certificate gone, a new worker cannot start.
      renameSync(key, `${key}.away`)
      assert.strictEqual(yield* restart(admin, 1), 200)
      yield* until("two pauses", () => lines(cli, /worker 1 keeps failing: it is replaced in 2s/).length === 1, 500)
      assert.strictEqual(lines(cli, /worker 1 keeps failing: it is replaced in 1s/).length, 1)
      assert.isAtLeast(lines(cli, /level=ERROR .*worker 1 exited: .*key\.pem/).length, 2)
      yield* metricIs(admin, "tcp_proxy_workers", 1)
      renameSync(`${key}.away`, key)
      yield* eventually(
        "worker 1 back",
        Effect.map(metric(admin, "tcp_proxy_workers"), (n) => n === 2 ? Option.some(n) : Option.none()),
        500
      )
    }), { timeout: 60_000 })

  it.live("an address in use: one line, as a single process says it, and exit 1", () =>
    Effect.gen(function*() {
      const taken = yield* echoServer()
      const result = yield* runCli(["--workers", "2", "--laddr", taken.address, "127.0.0.1:1"])
      assert.strictEqual(result.code, 1)
      assert.strictEqual(result.stderr, `tcp-proxy: cannot listen on ${taken.address}: address already in use\n`)
    }), { timeout: 30_000 })
})
