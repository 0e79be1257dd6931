/**
 * The admin HTTP endpoint: `GET /metrics` (Prometheus text of every metric in
 * the registry), `GET /healthz` (200 while a backend is HEALTHY and the proxy
 * is not draining, 503 otherwise) and `GET /backends` (JSON). Other paths 404.
 * It is built before the listener, so it keeps answering through the drain.
 *
 * @since 0.1.0
 */
import { createServer, type Server } from "node:http"
import * as NodeHttpServer from "@effect/platform-node/NodeHttpServer"
import * as Data from "effect/Data"
import * as Effect from "effect/Effect"
import * as Layer from "effect/Layer"
import * as HttpRouter from "effect/http/HttpRouter"
import * as HttpServerResponse from "effect/http/HttpServerResponse"
import * as PrometheusMetrics from "effect/observability/PrometheusMetrics"
import * as Address from "../domain/Address.ts"
import { BackendRegistry } from "../services/BackendRegistry.ts"
import { AdminEndpoint } from "../services/Listener.ts"
import { Draining } from "../services/Shutdown.ts"

/** The admin address could not be bound. */
export class AdminListenError extends Data.TaggedError("AdminListenError")<{
  readonly address: string
  readonly cause: unknown
}> {
  override get message(): string {
    const code = this.cause instanceof Error && "code" in this.cause ? this.cause.code : undefined
    const why = code === "EADDRINUSE" ? "address already in use" : String(this.cause)
    return `cannot listen on ${this.address} (metrics-addr): ${why}`
  }
}

/** The `/healthz` and `/backends` routes over the registry and the draining flag. */
const routes = Layer.unwrap(Effect.gen(function*() {
  const registry = yield* BackendRegistry
  const draining = yield* Draining
  const healthz = Effect.gen(function*() {
    const up = (yield* registry.healthy).length > 0 && !(yield* draining.isDraining)
    return HttpServerResponse.text(up ? "ok\n" : "unavailable\n", { status: up ? 200 : 503 })
  })
  const backends = Effect.gen(function*() {
    const all = yield* registry.all
    return HttpServerResponse.jsonUnsafe({
      backends: all.map((status) => ({
        address: status.backend.address,
        ...(status.backend.name === undefined ? {} : { name: status.backend.name }),
        state: status.state,
        weight: status.backend.weight,
        activeConnections: status.activeConnections
      })),
      draining: yield* draining.isDraining
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
): Layer.Layer<AdminEndpoint, AdminListenError, BackendRegistry | Draining> =>
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
