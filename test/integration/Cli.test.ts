import { assert, describe, it } from "@effect/vitest"
import { Effect, Option } from "effect"
import { listeningPort, runCli, spawnCli } from "./cli.ts"
import { connect, echoServer, eventually, exchange, readAll, relayed, server, until } from "./helpers.ts"

/** One line on stderr, naming the problem, and no stack trace. */
const assertOneLineError = (result: { code: number | string; stderr: string }, pattern: RegExp) => {
  assert.notStrictEqual(result.code, 0)
  const lines = result.stderr.trim().split("\n")
  assert.strictEqual(lines.length, 1, result.stderr)
  assert.match(lines[0]!, pattern)
  assert.notMatch(result.stderr, /\n\s+at /)
}

describe("command line", () => {
  it.live("--version and --help print to stdout and exit 0", () =>
    Effect.gen(function*() {
      const version = yield* runCli(["--version"])
      assert.strictEqual(version.code, 0)
      assert.match(version.stdout, /^tcp-proxy v\d+\.\d+\.\d+/)
      const help = yield* runCli(["--help"])
      assert.strictEqual(help.code, 0)
      for (const flag of ["--laddr", "--lb", "--timeout", "--retries", "--health-interval", "--grace", "--log-level"]) {
        assert.include(help.stdout, flag)
      }
    }))

  it.live("bad input exits non-zero with one line naming it", () =>
    Effect.gen(function*() {
      const cases: ReadonlyArray<readonly [ReadonlyArray<string>, RegExp]> = [
        [[], /no backends/],
        [["nohost"], /missing port in "nohost"/],
        [["127.0.0.1:99999"], /port out of range/],
        [["::1:80"], /IPv6 address must be in brackets/],
        [["--timeout", "3x", "127.0.0.1:1"], /--timeout.*"3x"/],
        [["--health-interval=soon", "127.0.0.1:1"], /--health-interval.*"soon"/],
        [["--lb", "fastest", "127.0.0.1:1"], /--lb.*"fastest"/],
        [["--retries", "-1", "127.0.0.1:1"], /--retries/],
        [["--laddr", "nowhere", "127.0.0.1:1"], /"nowhere"/],
        [["--log-level", "loud", "127.0.0.1:1"], /--log-level.*"loud"/],
        [["--bogus", "127.0.0.1:1"], /--bogus/],
        [["--allow", "10.0.0.300", "127.0.0.1:1"], /--allow: invalid IP address in "10\.0\.0\.300"/],
        [["--deny", "10.0.0.0/8,,", "127.0.0.1:1"], /--deny: empty address range/],
        [["--accept-proxy", "nowhere", "127.0.0.1:1"], /--accept-proxy: invalid IP address in "nowhere"/],
        [["--connection-rate-per-ip", "5", "127.0.0.1:1"], /--connection-rate-per-ip: expected N\/DURATION/],
        [["--max-connections-per-ip", "0", "127.0.0.1:1"], /--max-connections-per-ip/],
        [["--tcp-keepalive", "0s", "127.0.0.1:1"], /--tcp-keepalive.*between 1ms and 24 days/],
        [["--tls-cert", "/nonexistent/cert.pem", "127.0.0.1:1"], /--tls-cert and --tls-key go together/],
        [["--laddr", "127.0.0.1:0", "--tls-cert", "/nonexistent/cert.pem", "--tls-key", "/nonexistent/key.pem", "127.0.0.1:1"], /cannot use \/nonexistent\/cert\.pem/]
      ]
      for (const [args, pattern] of cases) assertOneLineError(yield* runCli(args), pattern)
    }), { timeout: 60_000 })

  it.live("a listen address in use exits non-zero saying so", () =>
    Effect.gen(function*() {
      const taken = yield* server(() => {})
      assertOneLineError(yield* runCli(["--laddr", taken.address, "127.0.0.1:1"]), /address already in use/)
    }))

  it.live("accepts case-insensitive names and Effect-style durations", () =>
    Effect.gen(function*() {
      const backend = yield* echoServer()
      const cli = yield* spawnCli(["--laddr", "127.0.0.1:0", "--lb", "RANDOM", "--timeout", "3 seconds", "--log-level", "Debug", backend.address])
      const port = yield* listeningPort(cli)
      assert.strictEqual((yield* exchange(port, "hi")).data.toString(), "hi")
    }))

  it.live("SIGUSR1 prints the metrics snapshot to stdout", () =>
    Effect.gen(function*() {
      const backend = yield* echoServer()
      const cli = yield* spawnCli(["--laddr", "127.0.0.1:0", backend.address])
      const port = yield* listeningPort(cli)
      yield* exchange(port, "12345")
      yield* until("the connection to be logged", () => cli.stderr().includes("connection closed"))
      cli.child.kill("SIGUSR1")
      yield* until("the snapshot", () => cli.stdout().includes("tcp_proxy_health_checks_total"))
      const lines = cli.stdout().trim().split("\n")
      assert.deepStrictEqual(lines, [...lines].sort())
      assert.include(lines, "tcp_proxy_connections_total: 1")
      assert.include(lines, "tcp_proxy_frontend_bytes_received_total: 5")
      assert.include(lines, `tcp_proxy_backend_connections_total{backend="${backend.address}"}: 1`)
      assert.include(lines, "tcp_proxy_connection_duration_seconds_count: 1")
      assert.notInclude(cli.stdout(), "listening on", "logs go to stderr only")
    }))

  it.live("SIGTERM drains: new connects refused, the open one finishes, exit 0", () =>
    Effect.gen(function*() {
      const backend = yield* echoServer()
      const cli = yield* spawnCli(["--laddr", "127.0.0.1:0", "--grace", "30s", backend.address])
      const port = yield* listeningPort(cli)
      const held = yield* connect(port)
      const received = readAll(held)
      held.write("before ")
      yield* relayed(backend)
      cli.child.kill("SIGTERM")
      // New connections are refused once the listener has closed.
      yield* eventually(
        "new connects to be refused",
        Effect.scoped(connect(port)).pipe(
          Effect.as(Option.none()),
          Effect.catch((error) => Effect.succeed(/ECONNREFUSED/.test(error.message) ? Option.some(true) : Option.none()))
        )
      )
      // The open connection still carries bytes both ways, then finishes.
      held.end("after")
      const reply = yield* received
      assert.strictEqual(reply.data.toString(), "before after")
      assert.strictEqual(yield* cli.exit, 0)
      assert.match(cli.stderr(), /end=done/)
    }))

  it.live("grace expiry resets a held connection (so its client can tell it was cut) and exits 0", () =>
    Effect.gen(function*() {
      const backend = yield* echoServer()
      const cli = yield* spawnCli(["--laddr", "127.0.0.1:0", "--grace", "200ms", backend.address])
      const port = yield* listeningPort(cli)
      const held = yield* connect(port)
      const received = readAll(held)
      held.once("end", () => held.end())
      held.write("ping")
      const backendSide = yield* relayed(backend)
      cli.child.kill("SIGTERM")
      assert.match(String((yield* received).error), /ECONNRESET/)
      assert.strictEqual(yield* cli.exit, 0)
      assert.match(cli.stderr(), /end=shutdown/)
      yield* until("the backend side to be closed", () => backendSide.closed)
    }))

  it.live("a second signal ends the drain at once, still exit 0", () =>
    Effect.gen(function*() {
      const backend = yield* echoServer()
      const cli = yield* spawnCli(["--laddr", "127.0.0.1:0", "--grace", "10m", backend.address])
      const port = yield* listeningPort(cli)
      const held = yield* connect(port)
      const received = readAll(held)
      held.once("end", () => held.end())
      held.write("x")
      yield* relayed(backend)
      cli.child.kill("SIGINT")
      yield* until("the drain to start", () => cli.stderr().includes("draining"))
      cli.child.kill("SIGINT")
      yield* received
      assert.strictEqual(yield* cli.exit, 0)
    }))
})
