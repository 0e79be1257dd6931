/**
 * The admin HTTP endpoint: `GET /metrics` (Prometheus text of every metric in
 * the registry), `GET /healthz` (200 while a backend of the default pool is
 * HEALTHY and the proxy is not draining, 503 otherwise) and `GET /backends`
 * (JSON, every pool). Other paths 404. It is built before the listener, so
 * it keeps answering through the drain. The proxy loads this module only
 * when `--metrics-addr` is given.
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

/** The `/healthz` and `/backends` routes over the pools and the draining flag. */
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
    PrometheusMetrics.layerHttp(),
    HttpRouter.add("GET", "/healthz", healthz),
    HttpRouter.add("GET", "/backends", backends)
  )
}))

/** Serves the admin endpoint on `address`; fails when it cannot be bound. */
export const layer = (
  address: Address.ListenAddress
): Layer.Layer<AdminEndpoint, AdminListenError, Routes | Draining> =>
  Layer.unwrap(Effect.sync(() => {
    const server: Server = createServer()
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
