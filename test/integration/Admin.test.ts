import { assert, describe, it } from "@effect/vitest"
import { Duration, Effect, Layer, Option, Result } from "effect"
import * as Config from "../../src/domain/Config.ts"
import { Resolver } from "../../src/services/Resolver.ts"
import { listeningPort, spawnCli } from "./cli.ts"
import { connect, deadPort, echoServer, eventually, exchange, readAll, relayed, startProxy, testConfig, until } from "./helpers.ts"

const get = (port: number, path: string) =>
  Effect.promise(async () => {
    const response = await fetch(`http://127.0.0.1:${port}${path}`)
    return { status: response.status, body: await response.text(), type: response.headers.get("content-type") }
  })

const withAdmin = { metricsAddress: Option.some({ host: "127.0.0.1", port: 0 }) }

/** A `/backends` entry without its `since` (checked to be an ISO 8601 time within the last minute). */
const sinceChecked = (entry: { readonly since?: unknown }) => {
  const { since, ...rest } = entry
  assert.isString(since)
  assert.isAtMost(Math.abs(Date.now() - Date.parse(String(since))), 60_000, `since ${String(since)}`)
  return rest
}

const adminPort = (proxy: { readonly adminPort: Option.Option<number> }) =>
  Option.match(proxy.adminPort, { onNone: () => assert.fail("no admin endpoint"), onSome: (port) => port })

describe("admin endpoint", () => {
  it.live("GET /metrics serves Prometheus text with the values and labels of known traffic", () =>
    Effect.gen(function*() {
      const backend = yield* echoServer()
      const proxy = yield* startProxy(testConfig([backend.address], withAdmin))
      for (const message of ["one", "two", "three"]) yield* exchange(proxy.port, message)
      yield* eventually(
        "three closed connections",
        Effect.map(proxy.metrics.snapshot, (s) => s.includes("tcp_proxy_connection_duration_seconds_count: 3") ? Option.some(true) : Option.none())
      )
      const metrics = yield* get(adminPort(proxy), "/metrics")
      assert.strictEqual(metrics.status, 200)
      assert.match(metrics.type ?? "", /^text\/plain; version=0\.0\.4/)
      const lines = metrics.body.split("\n")
      const b = backend.address
      for (
        const line of [
          "# TYPE tcp_proxy_connections_total counter",
          "tcp_proxy_connections_total 3",
          "tcp_proxy_connections_active 0",
          "tcp_proxy_frontend_bytes_received_total 11",
          "tcp_proxy_frontend_bytes_sent_total 11",
          `tcp_proxy_backend_bytes_sent_total{backend="${b}"} 11`,
          `tcp_proxy_backend_bytes_received_total{backend="${b}"} 11`,
          `tcp_proxy_backend_connections_total{backend="${b}"} 3`,
          `tcp_proxy_backend_connections_active{backend="${b}"} 0`,
          `tcp_proxy_backend_healthy{backend="${b}"} 1`,
          `tcp_proxy_errors_total{kind="io"} 0`,
          "# TYPE tcp_proxy_connection_duration_seconds histogram",
          "tcp_proxy_connection_duration_seconds_count 3",
          `tcp_proxy_backend_connect_duration_seconds_count{backend="${b}"} 3`
        ]
      ) assert.include(lines, line)
      assert.isTrue(lines.some((line) => line.startsWith(`tcp_proxy_connection_duration_seconds_bucket{le="+Inf"} 3`)))
      assert.isTrue(lines.some((line) => line.startsWith(`tcp_proxy_health_checks_total{backend="${b}",result="success"} `)))
    }))

  it.live("GET /backends lists the backends as JSON; other paths are 404", () =>
    Effect.gen(function*() {
      const backend = yield* echoServer()
      const proxy = yield* startProxy(testConfig([backend.address], withAdmin))
      const held = yield* connect(proxy.port)
      held.write("x")
      yield* relayed(backend)
      const response = yield* get(adminPort(proxy), "/backends")
      assert.strictEqual(response.status, 200)
      const body = JSON.parse(response.body)
      assert.deepStrictEqual({ ...body, backends: body.backends.map(sinceChecked) }, {
        backends: [{ address: backend.address, state: "HEALTHY", weight: 1, activeConnections: 1, admin: "ready", backup: false }],
        draining: false,
        routes: []
      })
      held.destroy()
      assert.strictEqual((yield* get(adminPort(proxy), "/nope")).status, 404)
    }))

  it.live("GET /backends lists each SNI route's pool with its names", () =>
    Effect.gen(function*() {
      const fallback = yield* echoServer()
      const api = yield* echoServer()
      const proxy = yield* startProxy(testConfig([fallback.address], {
        ...withAdmin,
        routes: [{
          sni: ["api.example.com", "*.api.example.com"],
          mode: "passthrough",
          balancer: Option.none(),
          backends: [Result.getOrThrow(Config.backend(api.address, 3))],
          tls: Option.none()
        }]
      }))
      const listed = JSON.parse((yield* get(adminPort(proxy), "/backends")).body)
      assert.deepStrictEqual(listed.routes.map((route: { readonly backends: ReadonlyArray<{ readonly since?: unknown }> }) => ({
        ...route,
        backends: route.backends.map(sinceChecked)
      })), [{
        sni: ["api.example.com", "*.api.example.com"],
        backends: [{ address: api.address, state: "HEALTHY", weight: 3, activeConnections: 0, admin: "ready", backup: false }]
      }])
      assert.deepStrictEqual(listed.backends.map((entry: { readonly address: string }) => entry.address), [fallback.address])
    }))

  it.live("a backend given by name is served at the address it resolves to, and listed with its name", () =>
    Effect.gen(function*() {
      const backend = yield* echoServer("echo:")
      const resolver = Layer.succeed(Resolver)({
        resolve: (host) => host === "echo.test" ? Effect.succeed(["127.0.0.1"]) : Effect.die(`unexpected ${host}`)
      })
      const proxy = yield* startProxy(testConfig([`echo.test:${backend.port}`], withAdmin), { resolver })
      assert.strictEqual((yield* exchange(proxy.port, "hi")).data.toString(), "echo:hi")
      const listed = JSON.parse((yield* get(adminPort(proxy), "/backends")).body)
      assert.deepStrictEqual(listed.backends.map(sinceChecked), [{
        address: backend.address,
        name: `echo.test:${backend.port}`,
        state: "HEALTHY",
        weight: 1,
        activeConnections: 0,
        admin: "ready",
        backup: false
      }])
      assert.include(yield* proxy.metrics.snapshot, `tcp_proxy_backend_connections_total{backend="${backend.address}"}: 1`)
    }))

  it.live("GET /healthz is 200 while a backend is HEALTHY, 503 when none is", () =>
    Effect.gen(function*() {
      const backend = yield* echoServer()
      const dead = `127.0.0.1:${yield* deadPort}`
      const proxy = yield* startProxy(testConfig([backend.address, dead], {
        ...withAdmin,
        health: { interval: Duration.millis(50), timeout: Duration.millis(200), healthyThreshold: 1, unhealthyThreshold: 1 }
      }))
      const port = adminPort(proxy)
      assert.strictEqual((yield* get(port, "/healthz")).status, 200)
      yield* Effect.callback<void>((resume) => {
        backend.server.close(() => resume(Effect.void))
      })
      yield* eventually(
        "healthz to turn 503",
        Effect.map(get(port, "/healthz"), (r) => (r.status === 503 ? Option.some(true) : Option.none()))
      )
    }))

  it.live("while draining, /healthz is 503 and /backends says so; the endpoint answers until exit", () =>
    Effect.gen(function*() {
      const backend = yield* echoServer()
      const cli = yield* spawnCli(["--laddr", "127.0.0.1:0", "--metrics-addr", "127.0.0.1:0", "--grace", "30s", backend.address])
      yield* listeningPort(cli)
      const port = Number(/admin endpoint on http:\/\/127\.0\.0\.1:(\d+)/.exec(cli.stderr())![1])
      const proxyPort = yield* listeningPort(cli)
      assert.strictEqual((yield* get(port, "/healthz")).status, 200)
      const held = yield* connect(proxyPort)
      const received = readAll(held)
      held.write("x")
      yield* relayed(backend)
      cli.child.kill("SIGTERM")
      yield* until("the drain to start", () => cli.stderr().includes("draining"))
      assert.strictEqual((yield* get(port, "/healthz")).status, 503)
      assert.isTrue(JSON.parse((yield* get(port, "/backends")).body).draining)
      held.end()
      yield* received
      assert.strictEqual(yield* cli.exit, 0)
    }))
})

describe("logs", () => {
  it.live("--log-format json writes one JSON object per line on stderr, with the connection fields", () =>
    Effect.gen(function*() {
      const backend = yield* echoServer()
      const cli = yield* spawnCli(["--laddr", "127.0.0.1:0", "--log-format", "json", backend.address])
      const port = yield* listeningPort(cli)
      yield* exchange(port, "hello")
      yield* until("the connection line", () => cli.stderr().includes("connection closed"))
      const lines = cli.stderr().trim().split("\n").map((line) => JSON.parse(line))
      for (const line of lines) {
        assert.isString(line.timestamp)
        assert.isString(line.level)
        assert.isString(line.message)
      }
      const closed = lines.find((line) => line.message === "connection closed")
      assert.strictEqual(closed.level, "INFO")
      assert.match(closed.client, /^127\.0\.0\.1:\d+$/)
      assert.strictEqual(closed.backend, backend.address)
      assert.strictEqual(closed.bytes_in, 5)
      assert.strictEqual(closed.bytes_out, 5)
      assert.isNumber(closed.duration_ms)
      assert.strictEqual(closed.end, "done")
    }))

  it.live("--log-level warn drops the info lines", () =>
    Effect.gen(function*() {
      const backend = yield* echoServer()
      const dead = yield* deadPort
      const cli = yield* spawnCli([
        "--laddr", "127.0.0.1:0", "--log-level", "warn", "--health-interval", "100ms", "--unhealthy-threshold", "1",
        backend.address, `127.0.0.1:${dead}`
      ])
      yield* until("the UNHEALTHY warning", () => cli.stderr().includes("now UNHEALTHY"))
      assert.notInclude(cli.stderr(), "level=INFO")
    }))
})
