/**
 * The bad day, over real sockets and real processes: the proxy out of file
 * descriptors, hostile config files, floods of admin connections and of bad
 * clients. Each test checks that the proxy says what happened, once, and keeps
 * serving.
 */
import { execFileSync } from "node:child_process"
import { mkdtempSync, readdirSync, readFileSync, readlinkSync, rmSync, writeFileSync } from "node:fs"
import type * as Net from "node:net"
import { tmpdir } from "node:os"
import { join } from "node:path"
import * as Tls from "node:tls"
import { fileURLToPath } from "node:url"
import { assert, describe, it } from "@effect/vitest"
import { Effect, Option, type Scope } from "effect"
import { type CliProcess, listeningPort, runCli, spawnCli } from "./cli.ts"
import { connect, echoServer, eventually, exchange, flood, readAll, resetSeen, server, until, untilBlocked } from "./helpers.ts"

/** A scratch directory for config files, removed when the scope ends. */
const scratch = Effect.acquireRelease(
  Effect.sync(() => mkdtempSync(join(tmpdir(), "tcp-proxy-safety-"))),
  (dir) => Effect.sync(() => rmSync(dir, { recursive: true, force: true }))
)

const fixture = (name: string) => fileURLToPath(new URL(`../fixtures/tls/${name}`, import.meta.url))
const ca = readFileSync(fixture("ca.pem"))

const write = (path: string, text: string) => Effect.sync(() => writeFileSync(path, text))

/** One line on stderr, naming the problem, and no stack trace. */
const assertOneLineError = (result: { code: number | string; stderr: string }, pattern: RegExp) => {
  assert.notStrictEqual(result.code, 0, result.stderr)
  const lines = result.stderr.trim().split("\n")
  assert.strictEqual(lines.length, 1, result.stderr)
  assert.match(lines[0]!, pattern)
  assert.notMatch(result.stderr, /\n\s+at /)
}

/** The SIGUSR1 snapshot number `n` (counting those asked for so far), as `name{labels}` -> value. */
const snapshot = (cli: CliProcess, n: number) =>
  Effect.gen(function*() {
    cli.child.kill("SIGUSR1")
    yield* until(`snapshot ${n}`, () => (cli.stdout().match(/^tcp_proxy_connections_total: /gm) ?? []).length >= n)
    // Series print sorted, one snapshot after the other: later values overwrite earlier ones.
    const values = new Map<string, number>()
    for (const line of cli.stdout().trim().split("\n")) {
      const match = /^(\S+): (\S+)$/.exec(line)
      if (match !== null) values.set(match[1]!, Number(match[2]))
    }
    return values
  })

/**
 * How many client connections process `pid` holds on its listening `port`:
 * its sockets (from /proc/PID/fd) that /proc/net/tcp lists with that local
 * port and not listening.
 */
const clientsHeld = (pid: number, port: number): number => {
  const inodes = new Set<string>()
  for (const fd of readdirSync(`/proc/${pid}/fd`)) {
    try {
      const match = /^socket:\[(\d+)\]$/.exec(readlinkSync(`/proc/${pid}/fd/${fd}`))
      if (match !== null) inodes.add(match[1]!)
    } catch {
      // closed meanwhile
    }
  }
  let held = 0
  const local = `:${port.toString(16).toUpperCase().padStart(4, "0")} `
  for (const line of readFileSync("/proc/net/tcp", "utf8").split("\n").slice(1)) {
    if (!line.includes(local)) continue
    const fields = line.trim().split(/\s+/)
    const [, localPort] = (fields[1] ?? "").split(":")
    if (localPort !== undefined && parseInt(localPort, 16) === port && fields[3] !== "0A" && inodes.has(fields[9]!)) held++
  }
  return held
}

/** A TLS client that sends `message` once connected; resolves with what came back, or how it failed. */
const tlsExchange = (port: number, message: string) =>
  Effect.callback<string>((resume) => {
    const socket = Tls.connect({ host: "127.0.0.1", port, ca })
    let reply = ""
    socket.on("error", (error) => resume(Effect.succeed(`error: ${error.message}`)))
    socket.on("secureConnect", () => socket.end(message))
    socket.on("data", (chunk: Buffer) => (reply += chunk.toString()))
    socket.on("close", () => resume(Effect.succeed(reply)))
    return Effect.sync(() => socket.destroy())
  })

describe("out of file descriptors", () => {
  it.live("backends stay HEALTHY, errors_total{kind=\"local\"} counts, an error line says so, and the proxy recovers", () =>
    Effect.gen(function*() {
      const a = yield* echoServer()
      const b = yield* echoServer()
      // A TLS listener: a client that sends nothing holds one descriptor of the proxy, and no backend connection.
      const cli = yield* spawnCli([
        "--laddr", "127.0.0.1:0", "--tls-cert", fixture("default.pem"), "--tls-key", fixture("default.key"),
        "--timeout", "30s", "--health-interval", "100ms", "--unhealthy-threshold", "1", "--max-connections", "1000",
        a.address, b.address
      ], { maxFiles: 64 })
      const port = yield* listeningPort(cli)
      const pid = cli.child.pid!
      const held = () => clientsHeld(pid, port)
      assert.match(
        cli.stderr(),
        /level=WARN .*the open-file limit \(64\) cannot hold --max-connections 1000, which needs about 2064 descriptors/
      )

      /** Idle clients until the proxy turns one away: then it is out of descriptors. */
      const exhaust = Effect.gen(function*() {
        for (let i = 0; i < 64; i++) {
          const socket = yield* connect(port)
          let closed = false
          socket.once("end", () => (closed = true)).once("close", () => (closed = true))
          yield* until("the proxy to hold the client, or to turn it away", () => closed || held() > idle.length)
          if (closed) return true
          idle.push(socket)
        }
        return false
      })
      const idle: Array<Net.Socket> = []

      // One descriptor free: the next client is accepted, and its dial fails for lack of a descriptor. (A check
      // may take that descriptor first and the client is turned away instead: then fill up and try again.)
      let dialFailures = 0
      for (let i = 0; i < 10 && dialFailures === 0; i++) {
        assert.isTrue(yield* exhaust, "the proxy ran out of descriptors")
        idle.pop()!.destroy()
        yield* until("the proxy to close the idle client", () => held() === idle.length)
        yield* tlsExchange(port, "hello")
        dialFailures = (cli.stderr().match(/end=dial_failed/g) ?? []).length
      }
      assert.isAtLeast(dialFailures, 1, "a dial failed for lack of a descriptor")
      // Out of descriptors again (a client turned away while a check held the last one leaves one free: fill
      // again): checks fail for the same reason as the dial, with error lines and nothing counted against a backend.
      const checkFailedLocally = () =>
        /level=ERROR .*health check of .*the proxy is out of file descriptors \(EMFILE\)/.test(cli.stderr())
      for (let i = 0; i < 5 && !checkFailedLocally(); i++) {
        assert.isTrue(yield* exhaust)
        yield* until("a check to fail locally", checkFailedLocally, 50).pipe(Effect.ignore)
      }
      assert.isTrue(checkFailedLocally(), "a check failed for lack of a descriptor")
      const values = yield* snapshot(cli, 1)
      assert.isAtLeast(values.get(`tcp_proxy_errors_total{kind="local"}`) ?? 0, 1)
      assert.strictEqual(values.get(`tcp_proxy_backend_healthy{backend="${a.address}"}`), 1)
      assert.strictEqual(values.get(`tcp_proxy_backend_healthy{backend="${b.address}"}`), 1)
      assert.notInclude(cli.stderr(), "UNHEALTHY")

      // Once descriptors are free again, new clients are served.
      for (const socket of idle) socket.destroy()
      yield* eventually(
        "a client to be served again",
        Effect.map(tlsExchange(port, "back"), (reply) => (reply === "back" ? Option.some(true) : Option.none()))
      )
      assert.notInclude(cli.stderr(), "UNHEALTHY")
      assert.notMatch(cli.stderr(), /\n\s+at /)
    }), { timeout: 30_000 })
})

/** A YAML file of a few hundred bytes whose aliases expand to billions of nodes. */
const aliasBomb = [
  `a: &a ["x", "x", "x", "x", "x", "x", "x", "x", "x"]`,
  ...Array.from({ length: 8 }, (_, i) => {
    const name = String.fromCharCode(98 + i)
    const previous = String.fromCharCode(97 + i)
    return `${name}: &${name} [*${previous}, *${previous}, *${previous}, *${previous}, *${previous}, *${previous}, *${previous}, *${previous}, *${previous}]`
  }),
  "backends: *i",
  ""
].join("\n")

describe("hostile config", () => {
  it.live("an alias bomb at start exits with one line", () =>
    Effect.gen(function*() {
      const path = join(yield* scratch, "bomb.yaml")
      yield* write(path, aliasBomb)
      assertOneLineError(yield* runCli(["--config", path, "--laddr", "127.0.0.1:0"]), /bomb\.yaml.*alias/)
    }))

  it.live("an alias bomb at reload is one `config reload failed` line; later reloads, by signal or by change, still apply", () =>
    Effect.gen(function*() {
      const a = yield* echoServer("a:")
      const b = yield* echoServer("b:")
      const path = join(yield* scratch, "proxy.yaml")
      yield* write(path, `backends: ["${a.address}"]\n`)
      const cli = yield* spawnCli(["--config", path, "--laddr", "127.0.0.1:0"])
      const port = yield* listeningPort(cli)
      const failures = () => (cli.stderr().match(/config reload failed/g) ?? []).length
      const reloads = () => (cli.stderr().match(/config reloaded/g) ?? []).length
      yield* write(path, aliasBomb)
      yield* until("the change to be refused", () => failures() >= 1)
      cli.child.kill("SIGHUP")
      yield* until("the signal's reload to be refused", () => failures() >= 2)
      assert.match(cli.stderr(), /level=ERROR .*config reload failed: .*proxy\.yaml.*alias/)
      assert.notMatch(cli.stderr(), /\n\s+at /)
      assert.strictEqual((yield* exchange(port, "?")).data.toString(), "a:?", "the running configuration stays")
      // The file-watch loop still applies a change...
      yield* write(path, `backends: ["${b.address}"]\n`)
      yield* until("the change to apply", () => reloads() >= 1)
      assert.strictEqual((yield* exchange(port, "?")).data.toString(), "b:?")
      // ...and so does the signal loop.
      yield* write(path, `backends: ["${a.address}"]\n`)
      cli.child.kill("SIGHUP")
      yield* eventually(
        "the first backend to serve again",
        exchange(port, "?").pipe(
          Effect.map((reply) => (reply.data.toString() === "a:?" ? Option.some(true) : Option.none())),
          Effect.orElseSucceed(() => Option.none())
        )
      )
    }))

  it.live("durations out of range are refused with one line giving the range", () =>
    Effect.gen(function*() {
      const cases: ReadonlyArray<readonly [ReadonlyArray<string>, RegExp]> = [
        [["--timeout", "999h"], /--timeout.*"999h".*between 1ms and 24 days/],
        [["--idle-timeout", `${"9".repeat(400)}s`], /--idle-timeout.*between 1ms and 24 days/],
        [["--grace", "25d"], /--grace.*between 1ms and 24 days/],
        [["--health-interval", "0s"], /--health-interval.*"0s".*between 100ms and 24 days/],
        [["--dns-refresh", "0s"], /--dns-refresh.*"0s".*between 100ms and 24 days/]
      ]
      for (const [args, pattern] of cases) assertOneLineError(yield* runCli([...args, "127.0.0.1:1"]), pattern)
      const path = join(yield* scratch, "proxy.yaml")
      yield* write(path, "health-interval: 1ms\nbackends: [\"127.0.0.1:1\"]\n")
      assertOneLineError(yield* runCli(["--config", path]), /proxy\.yaml.*health-interval.*between 100ms and 24 days/)
    }), { timeout: 60_000 })

  it.live("an unknown flag is one line with a suggestion", () =>
    Effect.gen(function*() {
      assertOneLineError(yield* runCli(["--timout", "3s", "127.0.0.1:1"]), /--timout.*did you mean --timeout\?/)
    }))

  it.live("a flag given twice is one line naming it", () =>
    Effect.gen(function*() {
      assertOneLineError(
        yield* runCli(["--log-level", "warn", "--log-level", "info", "127.0.0.1:1"]),
        /^tcp-proxy: --log-level is given 2 times: give it once$/
      )
    }))
})

describe("admin endpoint limits", () => {
  it.live("64 idle admin connections at most, a stalled request closed after 10 s, and the data path serves throughout", () =>
    Effect.gen(function*() {
      const backend = yield* echoServer()
      const cli = yield* spawnCli(["--laddr", "127.0.0.1:0", "--metrics-addr", "127.0.0.1:0", backend.address])
      const port = yield* listeningPort(cli)
      const admin = Number(/admin endpoint on http:\/\/127\.0\.0\.1:(\d+)/.exec(cli.stderr())![1])
      const adminHeld = () => clientsHeld(cli.child.pid!, admin)
      // 64 connections that send half a request and wait.
      const stalled: Array<Net.Socket> = []
      const ended = new Set<Net.Socket>()
      for (let i = 0; i < 64; i++) {
        const socket = yield* connect(admin)
        socket.on("data", () => {}).once("end", () => ended.add(socket)).once("close", () => ended.add(socket))
        socket.write("GET /metrics HTTP/1.1\r\n")
        stalled.push(socket)
      }
      yield* until("the endpoint to hold them", () => adminHeld() === stalled.length)
      // The 65th is closed at once; the data path still serves.
      const extra = yield* connect(admin)
      let refused = false
      extra.once("end", () => (refused = true)).once("close", () => (refused = true))
      yield* until("the 65th to be closed", () => refused)
      assert.strictEqual((yield* exchange(port, "still here")).data.toString(), "still here")
      // The stalled requests are closed once their headers have taken 10 s.
      yield* until("the stalled requests to be closed", () => ended.size === stalled.length, 1_000)
      assert.strictEqual((yield* exchange(port, "and here")).data.toString(), "and here")
    }), { timeout: 40_000 })
})

describe("log volume", () => {
  it.live("a flood of bad TLS clients: at most 10 warn lines a second, the rest counted in summaries; every access line kept", () =>
    Effect.gen(function*() {
      const backend = yield* echoServer()
      const cli = yield* spawnCli([
        "--laddr", "127.0.0.1:0", "--tls-cert", fixture("default.pem"), "--tls-key", fixture("default.key"), backend.address
      ])
      const port = yield* listeningPort(cli)
      const flood = 200
      yield* Effect.forEach(
        Array.from({ length: flood }, () => exchange(port, "GET / HTTP/1.0\r\n\r\n")),
        (client) => client,
        { concurrency: 20, discard: true }
      )
      const warnLines = () =>
        cli.stderr().split("\n").filter((line) =>
          /level=WARN .*message="TLS handshake failed: http request \(ERR_SSL_HTTP_REQUEST\)"/.test(line)
        )
      const suppressed = () =>
        [...cli.stderr().matchAll(/TLS handshake failed: (\d+) similar lines suppressed/g)].reduce((sum, m) => sum + Number(m[1]), 0)
      yield* until("every failure to be written or counted", () => warnLines().length + suppressed() === flood, 500)
      assert.strictEqual((cli.stderr().match(/end=protocol_error/g) ?? []).length, flood, "the access log is never sampled")
      const times = warnLines().map((line) => Date.parse(/timestamp=(\S+)/.exec(line)![1]!))
      for (const start of times) {
        assert.isAtMost(times.filter((t) => t >= start && t < start + 1000).length, 10)
      }
      assert.isAbove(suppressed(), 0)
      assert.strictEqual((yield* exchange(port, "")).error, undefined)
    }), { timeout: 30_000 })
})

/** Node options that make the proxy write its memory use, after a full collection, on SIGUSR2. */
const memoryProbe = ["--expose-gc", "--import", fileURLToPath(new URL("../fixtures/memory-on-signal.mjs", import.meta.url))]

interface MemoryUsage {
  readonly rss: number
  readonly heapUsed: number
  readonly external: number
}

/** The proxy's memory use after a full collection; `n` counts the probes so far. */
const memoryOf = (cli: CliProcess, n: number) =>
  Effect.gen(function*() {
    cli.child.kill("SIGUSR2")
    yield* until(`memory probe ${n}`, () => (cli.stderr().match(/^memory /gm) ?? []).length >= n)
    const lines = [...cli.stderr().matchAll(/^memory (.*)$/gm)]
    const usage: MemoryUsage = JSON.parse(lines[lines.length - 1]![1]!)
    return usage
  })

/** The proxy's open descriptors. */
const descriptorsOf = (cli: CliProcess): number => readdirSync(`/proc/${cli.child.pid}/fd`).length

/**
 * Runs `stall` (open the stalled connections) once and closes them again, so
 * that the proxy's one-off growth (its young generation, compiled code) is
 * not counted per connection; then the proxy's memory, and `stall` again.
 */
const measuredAfterWarmUp = <R>(cli: CliProcess, stall: Effect.Effect<void, Error, R | Scope.Scope>) =>
  Effect.gen(function*() {
    const descriptors = descriptorsOf(cli)
    yield* Effect.scoped(stall)
    yield* until("the warm-up connections to close", () => descriptorsOf(cli) <= descriptors)
    const before = yield* memoryOf(cli, 1)
    yield* stall
    return before
  })

/** A backend that echoes what a connection sends first, except `FLOOD`: then `onFlood` takes the connection over. */
const floodOrEcho = (onFlood: (socket: Net.Socket) => void) =>
  server((socket) => {
    socket.on("error", () => undefined)
    socket.on("end", () => socket.end())
    socket.once("data", (first: Buffer) => {
      if (first.toString("latin1").startsWith("FLOOD")) onFlood(socket)
      else socket.write(first)
    })
  })

/** The proxy holds at most 64 KiB of heap and buffers (96 KiB resident) per connection since `before`, and still serves. */
const heldAtMost64KiB = (cli: CliProcess, port: number, before: MemoryUsage, count: number) =>
  Effect.gen(function*() {
    const after = yield* memoryOf(cli, 2)
    const held = (after.heapUsed + after.external - before.heapUsed - before.external) / count
    const resident = (after.rss - before.rss) / count
    assert.isAtMost(held, 64 * 1024, `heap and buffers per connection: ${Math.round(held / 1024)} KiB`)
    assert.isAtMost(resident, 96 * 1024, `resident memory per connection: ${Math.round(resident / 1024)} KiB`)
    assert.strictEqual((yield* exchange(port, "still served")).data.toString(), "still served")
  })

describe("clients that do not read", () => {
  it.live("200 of them, their backends flooding: each costs the proxy at most 64 KiB, and the others are served", () =>
    Effect.gen(function*() {
      const count = 200
      const perConnection = 8 * 1024 * 1024
      const written = new Map<Net.Socket, number>()
      // FLOOD: up to 8 MiB as fast as the socket takes it.
      const backend = yield* floodOrEcho((socket) => flood(socket, written, perConnection))
      const cli = yield* spawnCli(["--laddr", "127.0.0.1:0", backend.address], { nodeArgs: memoryProbe })
      const port = yield* listeningPort(cli)
      const before = yield* measuredAfterWarmUp(cli, Effect.gen(function*() {
        written.clear()
        for (let i = 0; i < count; i++) {
          const client = yield* connect(port)
          client.pause()
          client.write("FLOOD")
        }
        // Every flood blocked: each backend waits for 'drain', and nothing moves for a while.
        yield* untilBlocked(written, count, perConnection)
      }))
      yield* heldAtMost64KiB(cli, port, before, count)
    }), { timeout: 60_000 })
})

describe("signals at a bad moment", () => {
  it.live("SIGTERM while start-up waits on a FIFO config nobody writes ends the process", () =>
    Effect.gen(function*() {
      const fifo = join(yield* scratch, "proxy.yaml")
      execFileSync("mkfifo", [fifo])
      const cli = yield* spawnCli(["--config", fifo, "--laddr", "127.0.0.1:0"])
      yield* until("the proxy to open the FIFO", () => {
        try {
          return readdirSync(`/proc/${cli.child.pid}/fd`).some((fd) => readlinkSync(`/proc/${cli.child.pid}/fd/${fd}`) === fifo)
        } catch {
          return false
        }
      })
      cli.child.kill("SIGTERM")
      assert.strictEqual(yield* cli.exit, 0)
      assert.strictEqual(cli.stderr(), "")
    }))

  it.live("SIGUSR1 snapshots nobody reads are skipped, with a warning, and the proxy keeps serving", () =>
    Effect.gen(function*() {
      const backend = yield* echoServer()
      const cli = yield* spawnCli(["--laddr", "127.0.0.1:0", backend.address], { unreadStdout: true })
      const port = yield* listeningPort(cli)
      const warned = () => cli.stderr().includes("SIGUSR1 snapshot skipped: stdout is not being read")
      // Signals that arrive together count once: paced, until stdout's buffer is full.
      for (let i = 0; i < 5000 && !warned(); i++) {
        cli.child.kill("SIGUSR1")
        yield* Effect.sleep("1 millis")
      }
      yield* until("the warning", warned)
      assert.strictEqual((yield* exchange(port, "still here")).data.toString(), "still here")
      const rss = Number(/VmRSS:\s+(\d+)/.exec(readFileSync(`/proc/${cli.child.pid}/status`, "utf8"))?.[1])
      assert.isBelow(rss, 400 * 1024, "the snapshots do not pile up in memory")
    }), { timeout: 60_000 })
})

describe("TLS clients that stop halfway", () => {
  it.live("a client that half-closes during the handshake is closed at once, not after --timeout", () =>
    Effect.gen(function*() {
      const backend = yield* echoServer()
      const cli = yield* spawnCli([
        "--laddr", "127.0.0.1:0", "--tls-cert", fixture("default.pem"), "--tls-key", fixture("default.key"), "--timeout", "1m",
        backend.address
      ])
      const port = yield* listeningPort(cli)
      for (const partial of ["", "\x16\x03\x01\x00"]) {
        const client = yield* connect(port)
        const closed = readAll(client)
        client.end(partial)
        yield* closed
      }
      yield* until("two log lines", () => (cli.stderr().match(/end=protocol_error/g) ?? []).length === 2)
    }), { timeout: 20_000 })
})

describe("backends that do not read", () => {
  it.live("200 of them, their clients flooding: each costs the proxy at most 64 KiB, and the others are served", () =>
    Effect.gen(function*() {
      const count = 200
      const perConnection = 8 * 1024 * 1024
      const written = new Map<Net.Socket, number>()
      // FLOOD: read nothing more.
      const backend = yield* floodOrEcho((socket) => socket.pause())
      const cli = yield* spawnCli(["--laddr", "127.0.0.1:0", backend.address], { nodeArgs: memoryProbe })
      const port = yield* listeningPort(cli)
      const before = yield* measuredAfterWarmUp(cli, Effect.gen(function*() {
        written.clear()
        for (let i = 0; i < count; i++) {
          const client = yield* connect(port)
          client.write("FLOOD")
          flood(client, written, perConnection)
        }
        // When a round ends, the backends read again: the clients close with their bytes unsent (FIN queued behind
        // them, no reset), which the proxy, waiting for the backend to read, cannot see.
        yield* Effect.addFinalizer(() => Effect.sync(() => backend.accepted.forEach((socket) => socket.resume())))
        // Every flood blocked: each client waits for 'drain', and nothing moves for a while.
        yield* untilBlocked(written, count, perConnection)
      }))
      yield* heldAtMost64KiB(cli, port, before, count)
    }), { timeout: 60_000 })
})

describe("a peer that resets while the proxy waits for the other side", () => {
  // The proxy stops reading a socket whose bytes the other side cannot take; it still notices a reset there.
  const count = 20
  const perConnection = 8 * 1024 * 1024

  /** `count` clients of the proxy at `port`, their errors ignored, each set going by `start`. */
  const clientsOf = (port: number, start: (client: Net.Socket) => void) =>
    Effect.forEach(Array.from({ length: count }), () =>
      Effect.map(connect(port), (client) => {
        client.on("error", () => undefined)
        start(client)
        return client
      }))

  /** Waits for `count` access lines ending as `end`. */
  const untilEnded = (cli: CliProcess, end: string) =>
    until(`${count} lines with end=${end}`, () => cli.stderr().split(`end=${end}`).length - 1 === count, 500)

  it.live("a flooding client that resets: its backend, which reads nothing, is reset too (end=client_reset)", () =>
    Effect.gen(function*() {
      const written = new Map<Net.Socket, number>()
      // FLOOD: read nothing more.
      const backend = yield* floodOrEcho((socket) => socket.pause())
      const cli = yield* spawnCli(["--laddr", "127.0.0.1:0", backend.address])
      const port = yield* listeningPort(cli)
      const clients = yield* clientsOf(port, (client) => {
        client.write("FLOOD")
        flood(client, written, perConnection)
      })
      yield* untilBlocked(written, count, perConnection)
      // Health checks connect too, and send nothing.
      const relayed = backend.accepted.filter((socket) => socket.bytesRead > 0)
      assert.strictEqual(relayed.length, count)
      clients.forEach((client) => client.resetAndDestroy())
      yield* untilEnded(cli, "client_reset")
      // The backends, reading again, find their connections reset.
      assert.deepStrictEqual(yield* Effect.forEach(relayed, resetSeen), relayed.map(() => "ECONNRESET"))
      assert.strictEqual((yield* exchange(port, "still served")).data.toString(), "still served")
    }), { timeout: 30_000 })

  it.live("a flooding backend that resets: its client, which reads nothing, is reset too (end=backend_reset)", () =>
    Effect.gen(function*() {
      const written = new Map<Net.Socket, number>()
      const backend = yield* server((socket) => {
        socket.on("error", () => undefined)
        socket.once("data", () => flood(socket, written, perConnection))
      })
      const cli = yield* spawnCli(["--laddr", "127.0.0.1:0", backend.address])
      const port = yield* listeningPort(cli)
      const clients = yield* clientsOf(port, (client) => {
        client.pause()
        client.write("FLOOD")
      })
      yield* untilBlocked(written, count, perConnection)
      written.forEach((_, socket) => socket.resetAndDestroy())
      yield* untilEnded(cli, "backend_reset")
      // The clients, reading again, find their connections reset.
      assert.deepStrictEqual(yield* Effect.forEach(clients, resetSeen), clients.map(() => "ECONNRESET"))
    }), { timeout: 30_000 })
})
