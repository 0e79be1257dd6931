import { mkdtempSync, rmSync, writeFileSync } from "node:fs"
import * as Http from "node:http"
import { tmpdir } from "node:os"
import { join } from "node:path"
import { assert, describe, it } from "@effect/vitest"
import { Effect } from "effect"
import { type CliProcess, listeningPort, spawnCli } from "./cli.ts"
import { server, until } from "./helpers.ts"

/** A Redis-like backend: answers every line it gets with `answer`. */
const lineServer = (answer: string) =>
  server((socket) => {
    let pending = ""
    socket.on("data", (chunk: Buffer) => {
      pending += chunk.toString("latin1")
      for (let end = pending.indexOf("\n"); end !== -1; end = pending.indexOf("\n")) {
        pending = pending.slice(end + 1)
        socket.write(answer)
      }
    })
    socket.on("end", () => socket.end())
  })

/** A request an HTTP backend got: its path and Host header. */
interface Request {
  readonly url: string | undefined
  readonly host: string | undefined
}

/** An HTTP backend on 127.0.0.1 answering `status(path)`; records each request. */
const httpServer = (status: (url: string | undefined) => number) =>
  Effect.acquireRelease(
    Effect.callback<{ readonly address: string; readonly requests: Array<Request>; readonly server: Http.Server }>((resume) => {
      const requests: Array<Request> = []
      const srv = Http.createServer((request, response) => {
        requests.push({ url: request.url, host: request.headers.host })
        response.statusCode = status(request.url)
        response.end("ok")
      })
      srv.listen(0, "127.0.0.1", () => {
        const bound = srv.address()
        const port = bound !== null && typeof bound === "object" ? bound.port : 0
        resume(Effect.succeed({ address: `127.0.0.1:${port}`, requests, server: srv }))
      })
    }),
    ({ server: srv }) =>
      Effect.callback<void>((resume) => {
        srv.closeAllConnections()
        srv.close(() => resume(Effect.void))
      })
  )

/** 200 for `/healthz`, 404 for any other path. */
const onlyHealthz = (url: string | undefined) => (url === "/healthz" ? 200 : 404)

/** A scratch directory for config files, removed when the scope ends. */
const scratch = Effect.acquireRelease(
  Effect.sync(() => mkdtempSync(join(tmpdir(), "tcp-proxy-checks-"))),
  (dir) => Effect.sync(() => rmSync(dir, { recursive: true, force: true }))
)

/** Checks every 100ms, one failure enough to turn UNHEALTHY. */
const fastChecks = ["--laddr", "127.0.0.1:0", "--health-interval", "100ms", "--unhealthy-threshold", "1"]

/** The `now UNHEALTHY` line of `address`, when the process has logged one. */
const unhealthyLine = (cli: CliProcess, address: string) =>
  cli.stderr().split("\n").find((line) => line.includes(`backend ${address} now UNHEALTHY`))

/** Waits until `address` has turned UNHEALTHY and returns its line. */
const turnsUnhealthy = (cli: CliProcess, address: string) =>
  Effect.map(until(`${address} to turn UNHEALTHY`, () => unhealthyLine(cli, address) !== undefined), () =>
    unhealthyLine(cli, address) ?? "")

describe("payload checks (CLI)", () => {
  it.live("a Redis-like backend answering -ERR to PING turns UNHEALTHY with --health-send/--health-expect and stays HEALTHY with plain TCP checks", () =>
    Effect.gen(function*() {
      const plainChecked = yield* lineServer("-ERR unknown command\r\n")
      const plain = yield* spawnCli([...fastChecks, plainChecked.address])
      yield* listeningPort(plain)
      yield* until("four plain checks", () => plainChecked.accepted.length >= 4)
      assert.isUndefined(unhealthyLine(plain, plainChecked.address))

      const failing = yield* lineServer("-ERR unknown command\r\n")
      const passing = yield* lineServer("+PONG\r\n")
      const cli = yield* spawnCli([
        ...fastChecks,
        "--log-level", "debug",
        "--health-send", "PING\\r\\n",
        "--health-expect", "+PONG",
        failing.address,
        passing.address
      ])
      const line = yield* turnsUnhealthy(cli, failing.address)
      assert.include(line, "level=WARN")
      assert.include(line, String.raw`reason="expected \"+PONG\", got \"-ERR unknown command\\r\\n\""`)
      assert.match(cli.stderr(), new RegExp(`level=DEBUG .*health check of ${failing.address} failed: expected`))
      yield* until("four checks of the answering backend", () => passing.accepted.length >= 4)
      assert.isUndefined(unhealthyLine(cli, passing.address))
    }))

  it.live("an HTTP backend answering 503 turns UNHEALTHY with --health-http, one answering 200 stays HEALTHY", () =>
    Effect.gen(function*() {
      const unavailable = yield* httpServer(() => 503)
      const ok = yield* httpServer(() => 200)
      const cli = yield* spawnCli([...fastChecks, "--health-http", "/healthz", unavailable.address, ok.address])
      const line = yield* turnsUnhealthy(cli, unavailable.address)
      assert.include(line, String.raw`reason="expected an HTTP 2xx or 3xx status line, got \"HTTP/1.1 503 Service Unavailable\\r\\n`)
      yield* until("four checks of the healthy backend", () => ok.requests.length >= 4)
      assert.isUndefined(unhealthyLine(cli, ok.address))
      assert.deepStrictEqual(ok.requests[0], { url: "/healthz", host: ok.address })
    }))

  it.live("a route's health-http in the config file overrides the top-level one for its pool", () =>
    Effect.gen(function*() {
      const fallback = yield* httpServer(onlyHealthz)
      const api = yield* httpServer(onlyHealthz)
      const config = join(yield* scratch, "proxy.yaml")
      writeFileSync(
        config,
        [
          "health-http: /missing",
          `backends: ["${fallback.address}"]`,
          "routes:",
          "  - sni: [api.example.com]",
          "    mode: passthrough",
          `    backends: ["${api.address}"]`,
          "    health-http: /healthz"
        ].join("\n")
      )
      const cli = yield* spawnCli([...fastChecks, "--config", config])
      yield* turnsUnhealthy(cli, fallback.address)
      yield* until("four checks of the route's backend", () => api.requests.length >= 4)
      assert.isUndefined(unhealthyLine(cli, api.address))
      assert.isTrue(api.requests.every((request) => request.url === "/healthz"))
      assert.isTrue(fallback.requests.every((request) => request.url === "/missing"))
    }))

  it.live("a reload that changes health-http applies from the next check", () =>
    Effect.gen(function*() {
      const target = yield* httpServer(onlyHealthz)
      const config = join(yield* scratch, "proxy.yaml")
      writeFileSync(config, `health-http: /missing\nbackends: ["${target.address}"]\n`)
      const cli = yield* spawnCli([...fastChecks, "--healthy-threshold", "1", "--config", config])
      yield* turnsUnhealthy(cli, target.address)
      writeFileSync(config, `health-http: /healthz\nbackends: ["${target.address}"]\n`)
      cli.child.kill("SIGHUP")
      yield* until("the backend to turn HEALTHY", () => cli.stderr().includes(`backend ${target.address} now HEALTHY`))
      assert.strictEqual(target.requests.at(-1)?.url, "/healthz")
    }))
})
