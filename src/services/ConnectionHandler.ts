/**
 * Serves one accepted client connection from start to end.
 *
 * @since 0.1.0
 */
import type * as Net from "node:net"
import * as Context from "effect/Context"
import type * as Effect from "effect/Effect"

/** Handles client connections: pick, dial, relay, account, log. */
export class ConnectionHandler extends Context.Service<ConnectionHandler, {
  /**
   * Serves one client socket until both sides are done. Whatever happens,
   * including interruption, both sockets are closed when it ends.
   */
  readonly handle: (client: Net.Socket) => Effect.Effect<void>
}>()("effect-tcp-proxy/ConnectionHandler") {}
