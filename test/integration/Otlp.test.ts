/**
 * `--otlp-endpoint` with the built CLI: the metrics reach a small OTLP/HTTP
 * receiver (JSON) with their names, values and resource attributes; a
 * failing collector is logged once and leaves the connections alone; a
 * reload that changes the endpoint says it needs a restart.
 */
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs"
import { createServer } from "node:http"
import { tmpdir } from "node:os"
import { join } from "node:path"
import { assert, describe, it } from "@effect/vitest"
import { Effect, Option } from "effect"
import { listeningPort, spawnCli } from "./cli.ts"
import { echoServer, eventually, exchange, until } from "./helpers.ts"

const version: unknown = JSON.parse(readFileSync(new URL("../../package.json", import.meta.url), "utf8")).version

/** An OTLP attribute: `{ key, value: { stringValue } }` and the like. */
interface KeyValue {
  readonly key: string
  readonly value: { readonly stringValue?: string; readonly intValue?: string | number; readonly doubleValue?: number }
}

interface DataPoint {
  readonly attributes?: ReadonlyArray<KeyValue>
  readonly asDouble?: number
  readonly asInt?: string | number
}

/** The part of an OTLP/JSON metrics request the tests read. */
interface MetricsRequest {
  readonly resourceMetrics: ReadonlyArray<{
    readonly resource: { readonly attributes: ReadonlyArray<KeyValue> }
    readonly scopeMetrics: ReadonlyArray<{
      readonly metrics: ReadonlyArray<{
        readonly name: string
        readonly sum?: { readonly dataPoints: ReadonlyArray<DataPoint> }
        readonly gauge?: { readonly dataPoints: ReadonlyArray<DataPoint> }
      }>
    }>
  }>
}

/** A receiver on 127.0.0.1 answering `status` to every request, keeping what it was sent; closed with the scope. */
const receiver = (status = 200) =>
  Effect.acquireRelease(
    Effect.callback<{ readonly url: string; readonly requests: Array<{ readonly type: string; readonly body: string }>; readonly close: () => void }>(
      (resume) => {
        const requests: Array<{ readonly type: string; readonly body: string }> = []
        const server = createServer((request, response) => {
          let body = ""
          request.on("data", (chunk: Buffer) => (body += chunk.toString()))
          request.on("end", () => {
            requests.push({ type: request.headers["content-type"] ?? "", body })
            response.writeHead(status, { "content-type": "application/json" }).end("{}")
          })
        })
        server.listen(0, "127.0.0.1", () => {
          const bound = server.address()
          const port = bound !== null && typeof bound === "object" ? bound.port : 0
          resume(Effect.succeed({
            url: `http://127.0.0.1:${port}/v1/metrics`,
            requests,
            close: () => {
              server.closeAllConnections()
              server.close()
            }
          }))
        })
      }
    ),
    (collector) => Effect.sync(() => collector.close())
  )

const stringAttribute = (attributes: ReadonlyArray<KeyValue> | undefined, key: string) =>
  attributes?.find((attribute) => attribute.key === key)?.value.stringValue

const pointValue = (point: DataPoint): number => point.asDouble ?? Number(point.asInt)

/** The value of `name` (with `attribute` = `value`, when given) in one request, if it is there. */
const valueIn = (request: MetricsRequest, name: string, attribute?: readonly [string, string]) => {
  for (const resource of request.resourceMetrics) {
    for (const scope of resource.scopeMetrics) {
      for (const metric of scope.metrics) {
        if (metric.name !== name) continue
        for (const point of metric.sum?.dataPoints ?? metric.gauge?.dataPoints ?? []) {
          if (attribute === undefined || stringAttribute(point.attributes, attribute[0]) === attribute[1]) return pointValue(point)
        }
      }
    }
  }
  return undefined
}

const scratch = Effect.acquireRelease(
  Effect.sync(() => mkdtempSync(join(tmpdir(), "tcp-proxy-otlp-"))),
  (dir) => Effect.sync(() => rmSync(dir, { recursive: true, force: true }))
)

describe("OTLP export", () => {
  it.live("pushes the metrics as OTLP/JSON with their values and the service's attributes; a reload of the endpoint needs a restart", () =>
    Effect.gen(function*() {
      const collector = yield* receiver()
      const backend = yield* echoServer()
      const dir = yield* scratch
      const file = join(dir, "proxy.yaml")
      writeFileSync(file, `backends: ["${backend.address}"]\notlp-endpoint: ${collector.url}\notlp-interval: 100ms\n`)
      const cli = yield* spawnCli(["--laddr", "127.0.0.1:0", "--config", file])
      const port = yield* listeningPort(cli)
      for (const message of ["one", "two", "three"]) yield* exchange(port, message)
      const request = yield* eventually(
        "a push counting three connections",
        Effect.sync(() =>
          Option.fromUndefinedOr(
            collector.requests
              .map((received): MetricsRequest => JSON.parse(received.body))
              .find((body) =>
                valueIn(body, "tcp_proxy_connections_total") === 3 &&
                valueIn(body, "tcp_proxy_backend_connections_total", ["backend", backend.address]) === 3
              )
          )
        )
      )
      assert.match(collector.requests[0]!.type, /^application\/json/)
      const resource = request.resourceMetrics[0]!.resource.attributes
      assert.strictEqual(stringAttribute(resource, "service.name"), "tcp-proxy")
      assert.strictEqual(stringAttribute(resource, "service.version"), version)
      assert.strictEqual(valueIn(request, "tcp_proxy_frontend_bytes_received_total"), "onetwothree".length)
      assert.strictEqual(valueIn(request, "tcp_proxy_connections_active"), 0)
      assert.strictEqual(valueIn(request, "tcp_proxy_errors_total", ["kind", "io"]), 0)
      // The endpoint is fixed at start: a reload that changes it says so, and the pushes go on to the first one.
      writeFileSync(file, `backends: ["${backend.address}"]\notlp-endpoint: http://127.0.0.1:1/v1/metrics\notlp-interval: 100ms\n`)
      cli.child.kill("SIGHUP")
      yield* until("the restart warning", () => cli.stderr().includes("otlp-endpoint changed: it takes effect after a restart"))
      const pushed = collector.requests.length
      yield* until("another push to the first endpoint", () => collector.requests.length > pushed + 1)
      cli.child.kill("SIGTERM")
      assert.strictEqual(yield* cli.exit, 0)
      assert.notInclude(cli.stderr(), "otlp export failed")
    }))

  it.live("a failing collector is logged once and never touches the connections", () =>
    Effect.gen(function*() {
      const collector = yield* receiver(503)
      const backend = yield* echoServer("echo:")
      const cli = yield* spawnCli([
        "--laddr", "127.0.0.1:0", "--otlp-endpoint", collector.url, "--otlp-interval", "100ms", backend.address
      ])
      const port = yield* listeningPort(cli)
      // The exporter retries a failed push: wait for the first retry, then look at the log.
      yield* until("a retried push", () => collector.requests.length >= 2)
      for (const message of ["a", "b", "c"]) assert.strictEqual((yield* exchange(port, message)).data.toString(), `echo:${message}`)
      const warnings = cli.stderr().split("\n").filter((line) => line.includes("otlp export failed"))
      assert.strictEqual(warnings.length, 1, cli.stderr())
      assert.match(warnings[0]!, /level=WARN/)
      assert.include(warnings[0]!, "503")
    }))
})
