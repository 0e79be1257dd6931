/**
 * The connection fibers, each in a slot of an array; how many slots are
 * taken is the one count of open client connections.
 *
 * Not a `FiberSet`. Under connection churn a `Set` whose members come and
 * go thousands of times a second made V8 promote about 320 KB per young
 * collection into the old generation (measured with `--trace-gc-nvp`: the
 * fibers and everything their connections held, long dead by then), so
 * that every few seconds a full mark-compact ran; with slots cleared when a
 * fiber ends, nothing is promoted. See PERF-NOTES (round 4).
 *
 * @since 0.1.0
 */
import * as Effect from "effect/Effect"
import type * as Exit from "effect/Exit"
import * as Fiber from "effect/Fiber"
import * as Layer from "effect/Layer"
import { Connections } from "../services/Connections.ts"
import { Metrics } from "../services/Metrics.ts"

/** Fibers in the slots of an array, the free slots in a stack. */
class Slots {
  readonly #fibers: Array<Fiber.Fiber<void> | undefined> = []
  readonly #free: Array<number> = []
  readonly #whenEmpty: Array<() => void> = []
  #taken = 0
  #closed = false

  get taken(): number {
    return this.#taken
  }

  /** Holds `fiber` until it ends; once closed, interrupts it at once (its exit handler closes its sockets). */
  add(fiber: Fiber.Fiber<void>): void {
    const slot = this.#free.pop() ?? this.#fibers.length
    this.#fibers[slot] = fiber
    this.#taken++
    fiber.addObserver(this.#release(slot))
    if (this.#closed) fiber.interruptUnsafe()
  }

  #release = (slot: number) => (_: Exit.Exit<void>): void => {
    this.#fibers[slot] = undefined
    this.#free.push(slot)
    if (--this.#taken > 0) return
    for (const resume of this.#whenEmpty.splice(0)) resume()
  }

  /** The fibers held now. */
  #held(): Array<Fiber.Fiber<void>> {
    return this.#fibers.filter((fiber) => fiber !== undefined)
  }

  /** Completes once no fiber is held. */
  readonly awaitEmpty: Effect.Effect<void> = Effect.callback<void>((resume) => {
    if (this.#taken === 0) return resume(Effect.void)
    const done = () => resume(Effect.void)
    this.#whenEmpty.push(done)
    return Effect.sync(() => {
      const index = this.#whenEmpty.indexOf(done)
      if (index >= 0) this.#whenEmpty.splice(index, 1)
    })
  })

  /** Interrupts every fiber held and waits for them to end. */
  readonly interruptAll: Effect.Effect<void> = Effect.suspend(() => Fiber.interruptAll(this.#held()))

  /** Interrupts what is held, and from now on every fiber added. */
  readonly close: Effect.Effect<void> = Effect.suspend(() => {
    this.#closed = true
    return this.interruptAll
  })
}

/** Connection fibers held as long as the layer; closing it interrupts what is left. */
export const layer: Layer.Layer<Connections, never, Metrics> = Layer.effect(
  Connections,
  Effect.gen(function*() {
    const slots = new Slots()
    const run = Effect.runForkWith(yield* Effect.context<never>())
    yield* Effect.addFinalizer(() => slots.close)
    yield* (yield* Metrics).trackConnections(() => slots.taken)
    return Connections.of({
      runUnsafe: (connection) => slots.add(run(connection)),
      open: () => slots.taken,
      awaitEmpty: slots.awaitEmpty,
      interruptAll: slots.interruptAll
    })
  })
)
