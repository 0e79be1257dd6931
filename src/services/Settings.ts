/**
 * The running configuration. Components read it when they need a value (a
 * connection reads its timeouts as it starts), so a reload takes effect for
 * what starts after it, and nothing open is disturbed.
 *
 * @since 0.1.0
 */
import { Context, type Effect, type Scope, type Stream } from "effect"
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
