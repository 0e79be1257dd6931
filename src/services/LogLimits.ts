/**
 * Log lines whose number others control (a flood of bad clients, a storm of
 * local resource errors) go through here: at most a given number per second
 * and kind; the rest are counted and summarised once a second
 * (`bad ClientHello: 120 similar lines suppressed`).
 *
 * @since 0.1.0
 */
import * as Context from "effect/Context"
import type * as Effect from "effect/Effect"

/** The level of a limited line. */
export type LimitedLevel = "warn" | "error"

/** Writes log lines within per-kind budgets. */
export class LogLimits extends Context.Service<LogLimits, {
  /**
   * Writes `message` (with `annotations`) at `level` unless `kind` has had
   * `perSecond` lines in the last second; a line left out is counted into the
   * next summary of `kind`.
   */
  readonly log: (options: {
    readonly kind: string
    readonly perSecond: number
    readonly level: LimitedLevel
    readonly message: string
    readonly annotations?: Readonly<Record<string, unknown>>
  }) => Effect.Effect<void>
}>()("effect-tcp-proxy/LogLimits") {}
