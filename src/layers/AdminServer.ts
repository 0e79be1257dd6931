/**
 * The admin HTTP endpoint: `GET /metrics` (Prometheus text of every metric in
 * the registry), `GET /healthz` (200 while a backend of the default pool is
 * HEALTHY and the proxy is not draining, 503 otherwise) and `GET /backends`
 * (JSON, every pool). Other paths 404. It is built before the listener, so
 * it keeps answering through the drain. It can never starve the data path:
 * it holds at most 64 connections, closes one whose request headers take over
 * 10 s or that sits idle for 30 s, and renders `/metrics` at most once a
 * second. The proxy loads this module only when `--metrics-addr` is given.
 *
 * @since 0.1.0
 */
import { createServer, type Server } from "node:http"
import * as NodeHttpServer from "@effect/platform-node/NodeHttpServer"
import * as Effect from "effect/Effect"
import * as Layer from "effect/Layer"
import * as HttpRouter from "effect/http/HttpRouter"
import * as HttpServerResponse from "effect/http/HttpServerResponse"
import * as PrometheusMetrics from "effect/observability/PrometheusMetrics"
import * as Address from "../domain/Address.ts"
import { AdminEndpoint, AdminListenError } from "../services/AdminEndpoint.ts"
import type { BackendStatus } from "../services/BackendRegistry.ts"
import { Routes } from "../services/Routes.ts"
import { Draining } from "../services/Shutdown.ts"

/** A backend as `/backends` shows it. */
const describeBackend = (status: BackendStatus) => ({
  address: status.backend.address,
  ...(status.backend.name === undefined ? {} : { name: status.backend.name }),
  state: status.state,
  weight: status.weight,
  activeConnections: status.activeConnections
})

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

/** The routes over the pools and the draining flag. */
const routes = Layer.unwrap(Effect.gen(function*() {
  const pools = (yield* Routes).pools
  const draining = yield* Draining
  const healthz = Effect.gen(function*() {
    const [defaultPool] = yield* pools
    const members = defaultPool === undefined ? [] : yield* defaultPool.pool.registry.all
    const up = members.some((status) => status.state === "HEALTHY") && !(yield* draining.isDraining)
    return HttpServerResponse.text(up ? "ok\n" : "unavailable\n", { status: up ? 200 : 503 })
  })
  const backends = Effect.gen(function*() {
    const all = yield* pools
    const listed = yield* Effect.forEach(all, (routed) =>
      Effect.map(routed.pool.registry.all, (members) => ({ sni: routed.sni, backends: members.map(describeBackend) })))
    const [first, ...rest] = listed
    return HttpServerResponse.jsonUnsafe({
      backends: first?.backends ?? [],
      draining: yield* draining.isDraining,
      routes: rest.map((route) => ({ sni: route.sni ?? [], backends: route.backends }))
    })
  })
  return Layer.mergeAll(
    HttpRouter.add("GET", "/metrics", yield* metrics),
    HttpRouter.add("GET", "/healthz", healthz),
    HttpRouter.add("GET", "/backends", backends)
  )
}))

/** Serves the admin endpoint on `address`; fails when it cannot be bound. */
export const layer = (
  address: Address.ListenAddress
): Layer.Layer<AdminEndpoint, AdminListenError, Routes | Draining> =>
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
    return HttpRouter.serve(routes, { disableListenLog: true, disableLogger: true }).pipe(
      Layer.provideMerge(endpoint),
      Layer.provide(NodeHttpServer.layer(() => server, { port: address.port, host: address.host })),
      Layer.catchTag("ServeError", (error) =>
        Layer.effect(AdminEndpoint, Effect.fail(new AdminListenError({ address: text, cause: error.cause }))))
    )
  }))
