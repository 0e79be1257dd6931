/**
 * Process signals as streams, for the CLI: the library itself never
 * listens to signals.
 *
 * @since 0.1.0
 */
import * as Effect from "effect/Effect"
import * as Queue from "effect/Queue"
import type * as Scope from "effect/Scope"
import * as Stream from "effect/Stream"

/**
 * Starts listening to the given signals now (replacing their default action,
 * which for SIGHUP and SIGUSR1 is to end the process) and returns every
 * arrival from now on. The listeners are removed when the scope closes.
 */
export const listen = (...names: ReadonlyArray<NodeJS.Signals>): Effect.Effect<Stream.Stream<NodeJS.Signals>, never, Scope.Scope> =>
  Effect.gen(function*() {
    const queue = yield* Queue.unbounded<NodeJS.Signals>()
    const on = (signal: NodeJS.Signals) => Queue.offerUnsafe(queue, signal)
    yield* Effect.acquireRelease(
      Effect.sync(() => names.forEach((name) => process.on(name, on))),
      () => Effect.sync(() => names.forEach((name) => process.off(name, on)))
    )
    return Stream.fromQueue(queue)
  })

/** Completes at the next SIGINT or SIGTERM. */
export const nextStop: Effect.Effect<void> = Effect.scoped(
  Effect.flatMap(listen("SIGINT", "SIGTERM"), (arrivals) => Stream.runDrain(Stream.take(arrivals, 1)))
)
