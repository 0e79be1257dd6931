/**
 * Chooses backends for a client connection.
 *
 * @since 0.1.0
 */
import * as Context from "effect/Context"
import type * as Effect from "effect/Effect"
import type { Backend } from "../domain/Config.ts"

/** The client a balancer picks for: IPv4-mapped addresses already shown as IPv4. */
export interface ClientInfo {
  readonly ip: string
  readonly port: number
}

/** Picks backends for each client connection. */
export class Balancer extends Context.Service<Balancer, {
  /**
   * The HEALTHY backends to try for this client, best first: the connection
   * dials the first and, when that dial fails, retries on the next. Empty
   * when no backend is healthy.
   */
  readonly candidates: (client: ClientInfo) => Effect.Effect<ReadonlyArray<Backend>>
}>()("effect-tcp-proxy/Balancer") {}
