/**
 * One active health check of one backend.
 *
 * @since 0.1.0
 */
import * as Context from "effect/Context"
import * as Data from "effect/Data"
import type * as Effect from "effect/Effect"
import type { Backend, PayloadCheck } from "../domain/Config.ts"
import type * as ProxyProtocol from "../domain/ProxyProtocol.ts"

/**
 * How a check is made, from the pool's settings at the time of the check: it
 * does what a connection needs (the PROXY header a connection sends first,
 * TLS toward the backend verified like a connection's), then asks what the
 * payload check asks, all within `timeoutMs`.
 */
export interface CheckOptions {
  readonly timeoutMs: number
  readonly proxyProtocol: ProxyProtocol.Mode
  /** Complete a TLS handshake, verified against this CA file when given. */
  readonly tls: { readonly ca: string | undefined } | undefined
  /** What to send and expect once connected (and the header sent, and TLS up). */
  readonly payload: PayloadCheck
}

/**
 * A check that failed, with why. `local`: the proxy itself ran out of a
 * resource, so the result says nothing about the backend and is not counted.
 */
export class HealthCheckError extends Data.TaggedError("HealthCheckError")<{
  readonly backend: string
  readonly reason: string
  readonly local: boolean
}> {
  override get message(): string {
    return `health check of ${this.backend} failed: ${this.reason}`
  }
}

/** Checks whether a backend is fit to serve connections. */
export class HealthCheck extends Context.Service<HealthCheck, {
  /** Succeeds when the backend passes one check. */
  readonly check: (backend: Backend, options: CheckOptions) => Effect.Effect<void, HealthCheckError>
}>()("effect-tcp-proxy/HealthCheck") {}
