/**
 * The set of connection fibers: a `FiberSet`, whose size is the one count
 * of open client connections.
 *
 * @since 0.1.0
 */
import * as Effect from "effect/Effect"
import * as FiberSet from "effect/FiberSet"
import * as Layer from "effect/Layer"
import { Connections } from "../services/Connections.ts"
import { Metrics } from "../services/Metrics.ts"

/** Connection fibers in a set that lives as long as the layer; closing it interrupts what is left. */
export const layer: Layer.Layer<Connections, never, Metrics> = Layer.effect(
  Connections,
  Effect.gen(function*() {
    const set = yield* FiberSet.make<void, never>()
    const run = yield* FiberSet.runtime(set)()
    const size = () => set.state._tag === "Open" ? set.state.backing.size : 0
    yield* (yield* Metrics).trackConnections(size)
    return Connections.of({
      runUnsafe: (connection) => {
        run(connection)
      },
      open: size,
      awaitEmpty: FiberSet.awaitEmpty(set),
      interruptAll: FiberSet.clear(set)
    })
  })
)
