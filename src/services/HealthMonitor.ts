/**
 * Turns check results into health states: consecutive failures make a backend
 * UNHEALTHY, consecutive successes HEALTHY again. Active checks and failed
 * dials of real connections both report here.
 *
 * @since 0.1.0
 */
import * as Context from "effect/Context"
import type * as Effect from "effect/Effect"

/** Counts check results per backend and applies the thresholds. */
export class HealthMonitor extends Context.Service<HealthMonitor, {
  /** Records one result for a backend, changing its state when a threshold is reached. */
  readonly report: (address: string, success: boolean) => Effect.Effect<void>
}>()("effect-tcp-proxy/HealthMonitor") {}
