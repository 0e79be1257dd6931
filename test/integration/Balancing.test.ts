import { assert, describe, it } from "@effect/vitest"
import { Duration, Effect, Option } from "effect"
import {
  captureLogs,
  deadPort,
  echoServer,
  eventually,
  exchange,
  type LogLine,
  server,
  startProxy,
  testConfig,
  until
} from "./helpers.ts"

const fastHealth = {
  interval: Duration.millis(50),
  timeout: Duration.millis(200),
  healthyThreshold: 2,
  unhealthyThreshold: 2
}

/** Waits until the backend at `address` has the given state in the registry. */
const stateOf = (
  registry: { readonly all: Effect.Effect<ReadonlyArray<{ readonly backend: { readonly address: string }; readonly state: string }>> },
  address: string,
  state: string
) =>
  eventually(
    `${address} to be ${state}`,
    Effect.map(registry.all, (all) =>
      all.some((status) => status.backend.address === address && status.state === state)
        ? Option.some(true)
        : Option.none())
  )

describe("balancing and health", () => {
  it.live("spreads connections over every healthy backend", () =>
    Effect.gen(function*() {
      const a = yield* echoServer("a:")
      const b = yield* echoServer("b:")
      const proxy = yield* startProxy(testConfig([a.address, b.address], { balancer: "random" }))
      const seen = new Set<string>()
      for (let i = 0; i < 40 && seen.size < 2; i++) seen.add((yield* exchange(proxy.port, "x")).data.toString())
      assert.deepStrictEqual([...seen].sort(), ["a:x", "b:x"])
    }))

  it.live("a killed backend turns UNHEALTHY, gets no traffic, and comes back HEALTHY", () => {
    const lines: Array<LogLine> = []
    return Effect.gen(function*() {
      const a = yield* echoServer("a:")
      let bServer = yield* echoServer("b:")
      const proxy = yield* startProxy(testConfig([a.address, bServer.address], { health: fastHealth }))
      // Kill b: close its listener and its connections.
      const port = bServer.port
      yield* Effect.callback<void>((resume) => {
        bServer.server.close(() => resume(Effect.void))
      })
      yield* stateOf(proxy.registry, bServer.address, "UNHEALTHY")
      assert.isTrue(lines.some((line) => line.message === `backend ${bServer.address} now UNHEALTHY`))
      for (let i = 0; i < 20; i++) assert.strictEqual((yield* exchange(proxy.port, "x")).data.toString(), "a:x")
      // Bring b back on the same port.
      bServer = yield* server((socket) => {
        socket.on("data", (chunk) => socket.write(`b:${chunk}`))
        socket.on("end", () => socket.end())
      }, port)
      yield* stateOf(proxy.registry, bServer.address, "HEALTHY")
      assert.isTrue(lines.some((line) => line.message === `backend ${bServer.address} now HEALTHY`))
      const snapshot = yield* proxy.metrics.snapshot
      assert.include(snapshot, `tcp_proxy_backend_healthy{backend="${bServer.address}"}: 1`)
      assert.match(snapshot, new RegExp(`tcp_proxy_health_checks_total\\{backend="${bServer.address}",result="failure"\\}: [1-9]`))
    }).pipe(Effect.provide(captureLogs(lines)))
  })

  it.live("a refused dial is retried on another backend, unseen by the client", () =>
    Effect.gen(function*() {
      const live = yield* echoServer()
      const dead = `127.0.0.1:${yield* deadPort}`
      // Checks too rare to matter: only the retry path can save these connections.
      const proxy = yield* startProxy(testConfig([dead, live.address], {
        balancer: "random",
        health: { ...fastHealth, interval: Duration.minutes(10), unhealthyThreshold: 1000 }
      }))
      for (let i = 0; i < 30; i++) assert.strictEqual((yield* exchange(proxy.port, `m${i}`)).data.toString(), `m${i}`)
      const snapshot = yield* proxy.metrics.snapshot
      assert.match(snapshot, new RegExp(`tcp_proxy_backend_dial_failures_total\\{backend="${dead}"\\}: [1-9]`))
      assert.include(snapshot, `tcp_proxy_errors_total{kind="dial"}: 0`)
    }))

  it.live("without retries a refused dial closes the client and counts a dial error", () => {
    const lines: Array<LogLine> = []
    return Effect.gen(function*() {
      const dead = `127.0.0.1:${yield* deadPort}`
      const proxy = yield* startProxy(testConfig([dead], {
        retries: 0,
        health: { ...fastHealth, interval: Duration.minutes(10), unhealthyThreshold: 1000 }
      }))
      const reply = yield* exchange(proxy.port, "anyone?")
      assert.strictEqual(reply.data.length, 0)
      yield* until("the connection log line", () => lines.some((line) => line.message === "connection closed"))
      const line = lines.find((line) => line.message === "connection closed")!
      assert.strictEqual(line.annotations.end, "dial_failed")
      assert.strictEqual(line.annotations.backend, dead)
      assert.include(yield* proxy.metrics.snapshot, `tcp_proxy_errors_total{kind="dial"}: 1`)
    }).pipe(Effect.provide(captureLogs(lines)))
  })

  it.live("failed dials of real connections count toward UNHEALTHY", () =>
    Effect.gen(function*() {
      const live = yield* echoServer()
      const dead = `127.0.0.1:${yield* deadPort}`
      const proxy = yield* startProxy(testConfig([dead, live.address], {
        balancer: "random",
        health: { ...fastHealth, interval: Duration.minutes(10), unhealthyThreshold: 3 }
      }))
      // The first active check at start fails once; real dials must supply the rest.
      for (let i = 0; i < 60; i++) {
        yield* exchange(proxy.port, "x")
        const all = yield* proxy.registry.all
        if (all.some((status) => status.backend.address === dead && status.state === "UNHEALTHY")) break
      }
      yield* stateOf(proxy.registry, dead, "UNHEALTHY")
    }))

  it.live("with no healthy backend a client is closed at once and the log says so", () => {
    const lines: Array<LogLine> = []
    return Effect.gen(function*() {
      const dead = `127.0.0.1:${yield* deadPort}`
      const proxy = yield* startProxy(testConfig([dead], { health: fastHealth }))
      yield* stateOf(proxy.registry, dead, "UNHEALTHY")
      const reply = yield* exchange(proxy.port, "hello?")
      assert.strictEqual(reply.data.length, 0)
      yield* until("the connection log line", () => lines.some((line) => line.message === "connection closed"))
      assert.isTrue(lines.some((line) => line.message === "no healthy backends"))
      const closed = lines.find((line) => line.message === "connection closed")!
      assert.strictEqual(closed.annotations.end, "no_backend")
      assert.notProperty(closed.annotations, "backend")
      assert.include(yield* proxy.metrics.snapshot, `tcp_proxy_errors_total{kind="no_backend"}: 1`)
    }).pipe(Effect.provide(captureLogs(lines)))
  })
})
