/**
 * Moves bytes between a client and its backend. Node's own `pipe` does the
 * per-chunk work (with backpressure); this module only watches for the end,
 * so Effect's structure stays around the relay, not inside every chunk.
 *
 * @since 0.1.0
 */
import type * as Net from "node:net"
import { Effect } from "effect"

/** How a relay ended: both sides finished, or one side failed (reset or error). */
export type RelayEnd = "done" | "client_reset" | "backend_reset"

/**
 * Relays both ways until both sockets are closed. Half-close passes through
 * (a FIN from one peer becomes a FIN to the other while the other direction
 * keeps flowing); an error or reset on one side resets the other. Completes
 * only when both sockets are fully closed, so none is left in CLOSE-WAIT.
 * Interruption destroys both sockets.
 */
export const relay = (client: Net.Socket, backend: Net.Socket): Effect.Effect<RelayEnd> =>
  Effect.callback<RelayEnd>((resume) => {
    let end: RelayEnd = "done"
    let open = 2
    const onClose = () => {
      if (--open === 0) resume(Effect.succeed(end))
    }
    const watch = (socket: Net.Socket, fault: RelayEnd, other: Net.Socket) => {
      const onError = () => {
        if (end === "done") end = fault
        other.resetAndDestroy()
      }
      if (socket.errored !== null) onError()
      else socket.on("error", onError)
      if (socket.closed) onClose()
      else socket.once("close", onClose)
    }
    watch(client, "client_reset", backend)
    watch(backend, "backend_reset", client)
    client.pipe(backend)
    backend.pipe(client)
    return Effect.sync(() => {
      client.destroy()
      backend.destroy()
    })
  })
