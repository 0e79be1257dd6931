/**
 * Log budgets in memory, with a fiber that writes the summaries of what was
 * left out once a second (only when something was).
 *
 * @since 0.1.0
 */
import * as Clock from "effect/Clock"
import * as Effect from "effect/Effect"
import * as Layer from "effect/Layer"
import * as Schedule from "effect/Schedule"
import { LogBudget } from "../domain/LogBudget.ts"
import { type LimitedLevel, LogLimits } from "../services/LogLimits.ts"

const write = (level: LimitedLevel, message: string) =>
  level === "warn" ? Effect.logWarning(message) : Effect.logError(message)

/** Per-kind budgets for the lifetime of the layer. */
export const layer: Layer.Layer<LogLimits> = Layer.effect(
  LogLimits,
  Effect.gen(function*() {
    const clock = yield* Clock.Clock
    const budget = new LogBudget()
    const levels = new Map<string, LimitedLevel>()
    const summarise = Effect.suspend(() =>
      Effect.forEach(
        budget.drain(clock.currentTimeMillisUnsafe()),
        ({ kind, suppressed }) => write(levels.get(kind) ?? "warn", `${kind}: ${suppressed} similar lines suppressed`),
        { discard: true }
      )
    )
    yield* summarise.pipe(Effect.repeat(Schedule.spaced("1 second")), Effect.forkScoped)
    return LogLimits.of({
      log: ({ annotations, kind, level, message, perSecond }) =>
        Effect.suspend(() => {
          levels.set(kind, level)
          if (!budget.admit(kind, perSecond, clock.currentTimeMillisUnsafe())) return Effect.void
          const line = write(level, message)
          return annotations === undefined ? line : Effect.annotateLogs(line, annotations)
        })
    })
  })
)
