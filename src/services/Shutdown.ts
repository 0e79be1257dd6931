/**
 * Shutdown: whether the proxy is draining, and how a drain can be cut short. The proxy drains open connections
 * for up to `--grace` when its scope closes; the CLI provides an effect that
 * completes on a second SIGINT/SIGTERM, which ends the drain at once.
 *
 * @since 0.1.0
 */
import * as Context from "effect/Context"
import * as Effect from "effect/Effect"

/** Whether the proxy has begun to drain; `/healthz` answers 503 from then on. */
export class Draining extends Context.Service<Draining, {
  readonly isDraining: Effect.Effect<boolean>
  /** Marks the drain as begun (the listener does it when its scope starts closing). */
  readonly begin: Effect.Effect<void>
}>()("effect-tcp-proxy/Draining") {}

/** Completes when the drain should stop waiting; by default it never does. */
export const DrainCut = Context.Reference<Effect.Effect<void>>("effect-tcp-proxy/DrainCut", {
  defaultValue: () => Effect.never
})
