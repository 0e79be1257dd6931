/**
 * The running configuration, in memory.
 *
 * @since 0.1.0
 */
import * as Effect from "effect/Effect"
import * as Layer from "effect/Layer"
import * as PubSub from "effect/PubSub"
import * as Stream from "effect/Stream"
import type { ProxyConfig } from "../domain/Config.ts"
import { Settings } from "../services/Settings.ts"

/** Settings starting at `initial`. */
export const layer = (initial: ProxyConfig): Layer.Layer<Settings> =>
  Layer.effect(
    Settings,
    Effect.gen(function*() {
      let current = initial
      const updates = yield* PubSub.unbounded<ProxyConfig>()
      return Settings.of({
        current: Effect.sync(() => current),
        update: (config) =>
          Effect.suspend(() => {
            current = config
            return PubSub.publish(updates, config)
          }),
        subscribe: Effect.map(PubSub.subscribe(updates), Stream.fromSubscription)
      })
    })
  )
