/**
 * The running configuration. Components read it when they need a value (a
 * connection reads its timeouts as it starts) or follow its changes, so a
 * reload takes effect for what starts after it and nothing open is
 * disturbed. A reload publishes one new value, once everything it needs is
 * ready.
 *
 * @since 0.1.0
 */
import * as Context from "effect/Context"
import type * as SubscriptionRef from "effect/SubscriptionRef"
import type { ProxyConfig } from "../domain/Config.ts"

/** The configuration in force, and its changes (`SubscriptionRef.changes` starts with the current one). */
export class Settings extends Context.Service<Settings, SubscriptionRef.SubscriptionRef<ProxyConfig>>()(
  "effect-tcp-proxy/Settings"
) {}
