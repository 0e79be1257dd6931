/**
 * Moves bytes between a client and its backend. Node's own `pipe` does the
 * per-chunk work (with backpressure); this module only watches for the end,
 * so Effect's structure stays around the relay, not inside every chunk.
 *
 * @since 0.1.0
 */
import type * as Net from "node:net"
import * as Effect from "effect/Effect"

/** How a relay ended: both sides finished, one side failed (reset or error), or nothing moved for too long. */
export type RelayEnd = "done" | "client_reset" | "backend_reset" | "idle_timeout"

/**
 * Relays both ways until both sockets are closed. Half-close passes through
 * (a FIN from one peer becomes a FIN to the other while the other direction
 * keeps flowing); an error or reset on one side resets the other. Completes
 * only when both sockets are fully closed, so none is left in CLOSE-WAIT.
 * With `idleTimeoutMs` above 0, a connection that carries no byte either way
 * for that long is closed on both sides: the client socket's own timer sees
 * both directions, since every byte is either read from it or written to it.
 * Interruption destroys both sockets.
 */
export const relay = (client: Net.Socket, backend: Net.Socket, idleTimeoutMs = 0): Effect.Effect<RelayEnd> =>
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
      else socket.on("close", onClose)
    }
    watch(client, "client_reset", backend)
    watch(backend, "backend_reset", client)
    if (idleTimeoutMs > 0) {
      client.setTimeout(idleTimeoutMs, () => {
        if (end === "done") end = "idle_timeout"
        client.destroy()
        backend.destroy()
      })
    }
    client.pipe(backend)
    backend.pipe(client)
    return Effect.sync(() => {
      client.destroy()
      backend.destroy()
    })
  })
