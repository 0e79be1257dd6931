/**
 * The client connections open now, each a fiber: the one count of them, read
 * by `--max-connections`, the `tcp_proxy_connections_active` gauge and the
 * drain.
 *
 * @since 0.1.0
 */
import * as Context from "effect/Context"
import type * as Effect from "effect/Effect"

/** The set of connection fibers. */
export class Connections extends Context.Service<Connections, {
  /** Starts serving a connection in a fiber of its own, at once (from a socket callback). */
  readonly runUnsafe: (connection: Effect.Effect<void>) => void
  /** How many connections are open now (synchronous: read by every new connection). */
  readonly open: () => number
  /** Completes once no connection is open. */
  readonly awaitEmpty: Effect.Effect<void>
  /** Interrupts every open connection (which closes its sockets) and waits for them to finish. */
  readonly interruptAll: Effect.Effect<void>
}>()("effect-tcp-proxy/Connections") {}
