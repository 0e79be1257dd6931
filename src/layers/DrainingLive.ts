/**
 * The draining flag, in memory.
 *
 * @since 0.1.0
 */
import * as Effect from "effect/Effect"
import * as Layer from "effect/Layer"
import { Draining } from "../services/Shutdown.ts"

/** A flag that starts false and turns true once. */
export const layer: Layer.Layer<Draining> = Layer.sync(Draining, () => {
  let draining = false
  return Draining.of({
    isDraining: Effect.sync(() => draining),
    begin: Effect.sync(() => {
      draining = true
    })
  })
})
