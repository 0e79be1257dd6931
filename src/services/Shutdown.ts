/**
 * How a graceful drain can be cut short. The proxy drains open connections
 * for up to `--grace` when its scope closes; the CLI provides an effect that
 * completes on a second SIGINT/SIGTERM, which ends the drain at once.
 *
 * @since 0.1.0
 */
import { Context, Effect } from "effect"

/** Completes when the drain should stop waiting; by default it never does. */
export const DrainCut = Context.Reference<Effect.Effect<void>>("effect-tcp-proxy/DrainCut", {
  defaultValue: () => Effect.never
})
