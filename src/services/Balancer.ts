/**
 * Chooses backends for a client connection.
 *
 * @since 0.1.0
 */
import * as Context from "effect/Context"
import type * as Effect from "effect/Effect"
import type { ClientView } from "../domain/balancing/Strategy.ts"
import type { Backend } from "../domain/Config.ts"

export type { ClientView } from "../domain/balancing/Strategy.ts"

/** Picks backends for each client connection. */
export class Balancer extends Context.Service<Balancer, {
  /**
   * The backends to try for this client, best first, each once: the
   * connection dials the first and, when that dial fails, retries on the
   * next. Empty when no backend may be picked.
   */
  readonly candidates: (client: ClientView) => Effect.Effect<ReadonlyArray<Backend>>
}>()("effect-tcp-proxy/Balancer") {}
