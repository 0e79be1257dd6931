/**
 * The health state machine: consecutive results against two thresholds.
 *
 * @since 0.1.0
 */

/** A backend's health: every backend starts HEALTHY. */
export type HealthState = "HEALTHY" | "UNHEALTHY"

/**
 * What an operator set (SPEC "Admin write API"): `ready` is in service;
 * `drain` takes no new connection, checks go on; `maintenance` takes no new
 * connection and is not checked.
 */
export type AdminState = "ready" | "drain" | "maintenance"

/** A backend's health and its current run of equal results. */
export interface HealthCounter {
  readonly healthy: boolean
  /** Consecutive successes (while UNHEALTHY) or failures (while HEALTHY) so far. */
  readonly streak: number
}

/** Every backend starts HEALTHY. */
export const initial: HealthCounter = { healthy: true, streak: 0 }

/** The thresholds: failures that make a backend UNHEALTHY, successes that make it HEALTHY. */
export interface Thresholds {
  readonly unhealthy: number
  readonly healthy: number
}

/**
 * Applies one result. A result that agrees with the current state resets the
 * streak; one that disagrees extends it, and flips the state when the streak
 * reaches its threshold.
 */
export const next = (counter: HealthCounter, success: boolean, thresholds: Thresholds): HealthCounter => {
  if (success === counter.healthy) return counter.streak === 0 ? counter : { healthy: counter.healthy, streak: 0 }
  const streak = counter.streak + 1
  const threshold = counter.healthy ? thresholds.unhealthy : thresholds.healthy
  return streak >= threshold ? { healthy: !counter.healthy, streak: 0 } : { healthy: counter.healthy, streak }
}

/** The state a counter stands for. */
export const state = (counter: HealthCounter): HealthState => counter.healthy ? "HEALTHY" : "UNHEALTHY"
