/**
 * The running configuration, in memory.
 *
 * @since 0.1.0
 */
import * as Layer from "effect/Layer"
import * as SubscriptionRef from "effect/SubscriptionRef"
import type { ProxyConfig } from "../domain/Config.ts"
import { Settings } from "../services/Settings.ts"

/** Settings starting at `initial`. */
export const layer = (initial: ProxyConfig): Layer.Layer<Settings> => Layer.effect(Settings, SubscriptionRef.make(initial))
