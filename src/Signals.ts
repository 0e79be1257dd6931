/**
 * Process signals as streams, for the CLI: the library itself never
 * listens to signals.
 *
 * @since 0.1.0
 */
import { Effect, Queue, Stream } from "effect"

/** Every arrival of the given signals, for as long as the stream runs. */
export const signals = (...names: ReadonlyArray<NodeJS.Signals>): Stream.Stream<NodeJS.Signals> =>
  Stream.callback<NodeJS.Signals>((queue) => {
    const on = (signal: NodeJS.Signals) => Queue.offerUnsafe(queue, signal)
    return Effect.acquireRelease(
      Effect.sync(() => names.forEach((name) => process.on(name, on))),
      () => Effect.sync(() => names.forEach((name) => process.off(name, on)))
    )
  })

/** Completes at the next SIGINT or SIGTERM. */
export const nextStop: Effect.Effect<void> = signals("SIGINT", "SIGTERM").pipe(Stream.take(1), Stream.runDrain)
