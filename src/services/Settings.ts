/**
 * The running configuration. Components read it when they need a value (a
 * connection reads its timeouts as it starts), so a reload takes effect for
 * what starts after it, and nothing open is disturbed.
 *
 * @since 0.1.0
 */
import * as Context from "effect/Context"
import type * as Effect from "effect/Effect"
import type * as Scope from "effect/Scope"
import type * as Stream from "effect/Stream"
import type { ProxyConfig } from "../domain/Config.ts"

/** The current configuration, and its changes. */
export class Settings extends Context.Service<Settings, {
  /** The configuration in force now. */
  readonly current: Effect.Effect<ProxyConfig>
  /** Puts a new configuration in force and tells the subscribers. */
  readonly update: (config: ProxyConfig) => Effect.Effect<void>
  /** Subscribes to updates made from now on (each delivers the new configuration). */
  readonly subscribe: Effect.Effect<Stream.Stream<ProxyConfig>, never, Scope.Scope>
}>()("effect-tcp-proxy/Settings") {}
