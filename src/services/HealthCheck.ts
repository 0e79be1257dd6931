/**
 * One active health check of one backend.
 *
 * @since 0.1.0
 */
import * as Context from "effect/Context"
import * as Data from "effect/Data"
import type * as Effect from "effect/Effect"
import type { Backend } from "../domain/Config.ts"

/** A check that failed, with why. */
export class HealthCheckError extends Data.TaggedError("HealthCheckError")<{
  readonly backend: string
  readonly cause: unknown
}> {}

/** Checks whether a backend accepts connections. */
export class HealthCheck extends Context.Service<HealthCheck, {
  /** Succeeds when the backend passes one check. */
  readonly check: (backend: Backend) => Effect.Effect<void, HealthCheckError>
}>()("effect-tcp-proxy/HealthCheck") {}
