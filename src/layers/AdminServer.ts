/**
 * The admin HTTP endpoint: `GET /metrics` (Prometheus text of every metric in
 * the registry), `GET /healthz` (200 while a backend of the default pool is
 * HEALTHY and the proxy is not draining, 503 otherwise) and `GET /backends`
 * (JSON, every pool), and the dashboard: `GET /`, its assets and `GET /stats`
 * (sampled every second while the endpoint is on). Other paths 404. It is
 * built before the listener, so it keeps answering through the drain. It can
 * never starve the data path: it holds at most 64 connections, closes one
 * whose request headers take over 10 s or that sits idle for 30 s, and
 * renders `/metrics` at most once a second. The proxy loads this module only when `--metrics-addr` is given.
 *
 * @since 0.1.0
 */
import { createHash, timingSafeEqual } from "node:crypto"
import { readFile } from "node:fs/promises"
import { createServer, type Server } from "node:http"
import * as NodeHttpServer from "@effect/platform-node/NodeHttpServer"
import * as Effect from "effect/Effect"
import * as Layer from "effect/Layer"
import * as Option from "effect/Option"
import * as Result from "effect/Result"
import * as SubscriptionRef from "effect/SubscriptionRef"
import * as HttpRouter from "effect/http/HttpRouter"
import * as HttpServerRequest from "effect/http/HttpServerRequest"
import * as HttpServerResponse from "effect/http/HttpServerResponse"
import * as PrometheusMetrics from "effect/observability/PrometheusMetrics"
import * as Address from "../domain/Address.ts"
import * as Text from "../domain/Text.ts"
import { AdminEndpoint, AdminListenError, AdminTokenError } from "../services/AdminEndpoint.ts"
import type { AdminState, BackendRegistry, BackendStatus } from "../services/BackendRegistry.ts"
import { Routes } from "../services/Routes.ts"
import { Settings } from "../services/Settings.ts"
import { Draining } from "../services/Shutdown.ts"
import { WorkersHandle } from "../services/Workers.ts"
import { backendsView, describeBackend } from "./BackendsView.ts"
import * as Dashboard from "./Dashboard.ts"
import * as StatsSampler from "./StatsSampler.ts"

/** Whether a backend takes new connections: HEALTHY and, for its operator, ready. */
const inService = (status: BackendStatus): boolean => status.state === "HEALTHY" && status.admin === "ready"

/** The biggest request body the write API reads. */
const maxBodyBytes = 1024

/**
 * Reads the write API's token: one line, surrounding whitespace ignored;
 * fails when the file cannot be read or holds none.
 */
export const readToken = (file: string) =>
  Effect.tryPromise({
    try: () => readFile(file, "utf8"),
    catch: (cause) =>
      new AdminTokenError({ file, reason: cause instanceof Error && "code" in cause ? String(cause.code) : String(cause) })
  }).pipe(
    Effect.flatMap((text) => {
      const token = text.trim()
      return token === "" ? Effect.fail(new AdminTokenError({ file, reason: "the file holds no token" })) : Effect.succeed(token)
    })
  )

const digest = (text: string) => createHash("sha256").update(text).digest()

/** Compares a presented token with the real one in constant time (over their digests, so lengths do not show). */
const tokenMatches = (presented: string, token: string): boolean => timingSafeEqual(digest(presented), digest(token))

const jsonError = (status: number, error: string) =>
  HttpServerResponse.jsonUnsafe({ error }, { status, ...(status === 401 ? { headers: { "www-authenticate": "Bearer" } } : {}) })

/** Connections the admin endpoint holds at once; more are closed as they arrive. */
export const maxConnections = 64
/** How long a request's headers may take to arrive. */
export const headersTimeoutMs = 10_000
/** How long a connection may sit idle. */
export const idleTimeoutMs = 30_000
/** How long a rendered `/metrics` text is served again: scraping more often costs nothing more. */
export const metricsTtlMs = 1000

/** `/metrics`: Prometheus text of every metric in the registry, rendered at most once per {@link metricsTtlMs}. */
const metrics = Effect.gen(function*() {
  let cached: { readonly at: number; readonly text: string } | undefined
  const render = Effect.suspend(() => {
    const now = Date.now()
    if (cached !== undefined && now - cached.at < metricsTtlMs) return Effect.succeed(cached.text)
    return Effect.map(PrometheusMetrics.format(), (text) => (cached = { at: now, text }).text)
  })
  return Effect.map(render, (text) => HttpServerResponse.text(text, { contentType: "text/plain; version=0.0.4; charset=utf-8" }))
})

/** The routes over the pools, the draining flag and the settings, and the dashboard's. */
const routes = Layer.unwrap(Effect.gen(function*() {
  const pools = (yield* Routes).pools
  const draining = yield* Draining
  const settings = yield* Settings
  const workersHandle = yield* WorkersHandle
  const healthz = Effect.gen(function*() {
    const [defaultPool] = yield* pools
    const members = defaultPool === undefined ? [] : yield* defaultPool.pool.registry.all
    const up = members.some(inService) && !(yield* draining.isDraining)
    return HttpServerResponse.text(up ? "ok\n" : "unavailable\n", { status: up ? 200 : 503 })
  })

  /** The answer to a write that may not be made (403 while the API is off, 401 without the right token); else undefined. */
  const refuse = (request: HttpServerRequest.HttpServerRequest) =>
    Effect.gen(function*() {
      const file = (yield* SubscriptionRef.get(settings)).adminTokenFile
      if (Option.isNone(file)) return jsonError(403, "the admin write API is off (start with --admin-token-file)")
      const token = yield* Effect.result(readToken(file.value))
      if (Result.isFailure(token)) return jsonError(500, "the token file cannot be read")
      const presented = /^Bearer\s+(\S+)\s*$/i.exec(request.headers["authorization"] ?? "")?.[1]
      if (presented === undefined || !tokenMatches(presented, token.success)) return jsonError(401, "unauthorized")
      return undefined
    })

  /** `POST /workers/N/restart`: ends worker N at once (its connections are cut); it is replaced like a crashed one. */
  const restartWorker = Effect.gen(function*() {
    const refused = yield* refuse(yield* HttpServerRequest.HttpServerRequest)
    if (refused !== undefined) return refused
    const text = (yield* HttpRouter.params)["worker"] ?? ""
    const index = /^\d{1,4}$/.test(text) ? Number(text) : 0
    const workers = workersHandle.current
    if (workers === undefined) return jsonError(404, "no workers (start with --workers N)")
    if (!(yield* workers.restart(index))) return jsonError(404, `no worker ${Text.quote(text)}`)
    return HttpServerResponse.jsonUnsafe({ worker: index, restarting: true })
  }).pipe(Effect.catchCause(() => Effect.succeed(jsonError(400, "bad request"))))

  /**
   * A write: 403 while the API is off, 401 without the right bearer token,
   * 400 for a body `parse` refuses, 404 for an address no pool holds; else
   * `change` applied to every pool that holds the backend, answered with
   * its entry. The token file is read at each write, so a new token applies
   * at once.
   */
  const write = <A>(
    parse: (request: HttpServerRequest.HttpServerRequest) => Effect.Effect<A, string>,
    change: (registry: BackendRegistry["Service"], address: string, value: A) => Effect.Effect<BackendStatus | undefined>
  ) =>
    Effect.gen(function*() {
      const request = yield* HttpServerRequest.HttpServerRequest
      const refused = yield* refuse(request)
      if (refused !== undefined) return refused
      const value = yield* Effect.result(parse(request))
      if (Result.isFailure(value)) return jsonError(400, value.failure)
      const address = decodeURIComponent((yield* HttpRouter.params)["address"] ?? "")
      let found: BackendStatus | undefined
      for (const routed of yield* pools) found = (yield* change(routed.pool.registry, address, value.success)) ?? found
      return found === undefined
        ? jsonError(404, `no backend ${Text.quote(address)}`)
        : HttpServerResponse.jsonUnsafe(describeBackend(found))
    }).pipe(Effect.catchCause(() => Effect.succeed(jsonError(400, "bad request"))))

  const noBody = () => Effect.void
  const admin = (state: AdminState) => write(noBody, (registry, address) => registry.setAdmin(address, state))

  /** `{"weight": N}`, N a positive integer, in a body of at most {@link maxBodyBytes}. */
  const weightOf = (request: HttpServerRequest.HttpServerRequest) =>
    Effect.gen(function*() {
      const length = Number(request.headers["content-length"] ?? "0")
      if (!(length <= maxBodyBytes)) return yield* Effect.fail(`a body of at most ${maxBodyBytes} bytes`)
      const text = yield* Effect.orElseSucceed(request.text, () => "")
      const parsed = yield* Effect.try({ try: (): unknown => JSON.parse(text), catch: () => "expected a JSON body" })
      const value = typeof parsed === "object" && parsed !== null && "weight" in parsed ? parsed.weight : undefined
      if (typeof value !== "number" || !Number.isInteger(value) || value < 1 || value > 1_000_000) {
        return yield* Effect.fail(`expected {"weight": N} with N a positive integer`)
      }
      return value
    })

  const backends = Effect.map(Effect.provideContext(backendsView, yield* Effect.context<Routes | Draining>()), (view) =>
    HttpServerResponse.jsonUnsafe(view))
  return Layer.mergeAll(
    HttpRouter.add("GET", "/metrics", yield* metrics),
    HttpRouter.add("GET", "/healthz", healthz),
    HttpRouter.add("GET", "/backends", backends),
    HttpRouter.add("POST", "/backends/:address/drain", admin("drain")),
    HttpRouter.add("POST", "/backends/:address/maintenance", admin("maintenance")),
    HttpRouter.add("POST", "/backends/:address/ready", admin("ready")),
    HttpRouter.add("PUT", "/backends/:address/weight", write(weightOf, (registry, address, weight) => registry.setWeight(address, weight))),
    HttpRouter.add("POST", "/workers/:worker/restart", restartWorker),
    Dashboard.routes
  )
}))

/** Serves the admin endpoint on `address`; fails when it cannot be bound. */
export const layer = (
  address: Address.ListenAddress
): Layer.Layer<AdminEndpoint, AdminListenError, Routes | Draining | Settings> =>
  Layer.unwrap(Effect.sync(() => {
    const server: Server = createServer({
      headersTimeout: headersTimeoutMs,
      requestTimeout: headersTimeoutMs,
      keepAliveTimeout: idleTimeoutMs,
      // How often headersTimeout and requestTimeout are checked.
      connectionsCheckingInterval: 1000
    })
    server.maxConnections = maxConnections
    server.setTimeout(idleTimeoutMs)
    const text = Address.format(address.host, address.port)
    const endpoint = Layer.effect(
      AdminEndpoint,
      Effect.gen(function*() {
        const bound = server.address()
        const actual = bound !== null && typeof bound === "object"
          ? { host: bound.address, port: bound.port }
          : { host: address.host ?? "", port: address.port }
        yield* Effect.logInfo(`admin endpoint on http://${Address.format(actual.host, actual.port)}`)
        return AdminEndpoint.of({ address: actual })
      })
    )
    return HttpRouter.serve(routes.pipe(Layer.provide(StatsSampler.layer)), { disableListenLog: true, disableLogger: true }).pipe(
      Layer.provideMerge(endpoint),
      Layer.provide(NodeHttpServer.layer(() => server, { port: address.port, host: address.host })),
      Layer.catchTag("ServeError", (error) =>
        Layer.effect(AdminEndpoint, Effect.fail(new AdminListenError({ address: text, cause: error.cause }))))
    )
  }))
