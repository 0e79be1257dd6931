/**
 * Moves bytes between a client and its backend with the sockets' own
 * machinery: plain TCP sockets read into a shared buffer (see
 * `SharedBufferReads`), other streams through a `data` handler that
 * writes to the other side and pauses on backpressure; `end` is passed on as
 * a half-close. No Effect code runs per chunk; the relay is one suspension of
 * the connection's fiber.
 *
 * @since 0.1.0
 */
import type * as Net from "node:net"
import * as Effect from "effect/Effect"
import { constVoid } from "effect/Function"
import { BackendReset, ClientReset, IdleTimeout, type RelayError } from "../services/Connection.ts"
import type { BackendReads } from "../services/Dialer.ts"
import * as Stalls from "./Stalls.ts"

/**
 * Relays `from`'s bytes into `to`, reading only as fast as `to` takes them;
 * `from`'s end becomes `to`'s, also when it came before the relay started (a
 * client that sent FIN while its backend was being dialled). `from` may have
 * been paused (a peek of its first bytes): it flows from now on. While it
 * waits for `to`, `fromTcp` (the TCP socket under it) is probed for a reset.
 */
const forward = (from: Net.Socket, to: Net.Socket, fromTcp: Net.Socket): void => {
  const direction: Stalls.Stoppable = { get stopped() { return from.isPaused() ? fromTcp : undefined } }
  from.on("data", (chunk: Buffer) => {
    if (to.write(chunk)) return
    from.pause()
    Stalls.watch(direction)
  })
  to.on("drain", () => from.resume())
  if (from.readableEnded) to.end()
  else from.on("end", () => to.end())
  from.resume()
}

/**
 * Resets a TCP socket (its peer sees RST: the stream was cut) and destroys
 * it. A socket whose FIN is being sent (`end()` called, the shutdown not yet
 * done) cannot be reset: libuv refuses while a shutdown is in progress, and
 * Node then reports an `EINVAL` error and never emits `close`. Such a socket
 * is destroyed instead (its peer has its FIN already).
 */
export const reset = (socket: Net.Socket): void => {
  if (socket.writableEnded && !socket.writableFinished) socket.destroy()
  else socket.resetAndDestroy()
}

/** The two ends of a relay: what carries the bytes on each side, and the TCP sockets under them. */
export interface Ends {
  /** The client side: the client socket, or the TLS session over it when terminating. */
  readonly client: Net.Socket
  /** The backend side: the backend socket, or the TLS session over it when re-encrypting. */
  readonly backend: Net.Socket
  /** The TCP sockets under them (the same sockets on the plain path): what a reset resets. */
  readonly clientTcp: Net.Socket
  readonly backendTcp: Net.Socket
  /** How `client` delivers what it reads, when not through `data` events (see `SharedBufferReads.adopt`). */
  readonly clientReads: BackendReads | undefined
  /** How `backend` delivers what it reads, when not through `data` events. */
  readonly backendReads: BackendReads | undefined
  /** Close both sides after this long without a byte either way; 0 for never. */
  readonly idleTimeoutMs: number
}

/**
 * Relays both ways until both sockets are closed. Half-close passes through
 * (a FIN from one peer becomes a FIN to the other while the other direction
 * keeps flowing); an error or reset on one side resets the other. Completes
 * only when both sockets are fully closed, so none is left in CLOSE-WAIT.
 * With an idle timeout, a connection that carries no byte either way for
 * that long is closed on both sides: the client socket's own timer sees both
 * directions, since every byte is either read from it or written to it.
 * Interruption resets both sides, so each peer can tell its stream was cut.
 * A side that stopped reading to wait for the other is probed for a reset
 * (see {@link Stalls}), so a peer that gave up is noticed while it waits.
 */
export const relay = (ends: Ends): Effect.Effect<void, RelayError> => {
  // Unpacked here, so that an open connection's closures hold the sockets and not the record.
  const { backend, backendReads, backendTcp, client, clientReads, clientTcp, idleTimeoutMs } = ends
  return Effect.callback<void, RelayError>((resume) => {
    let failure: RelayError | undefined
    let open = 2
    const onClose = () => {
      if (--open === 0) resume(failure === undefined ? Effect.void : Effect.fail(failure))
    }
    const onError = (side: Net.Socket) => {
      if (side === client) {
        failure ??= new ClientReset()
        reset(backendTcp)
      } else {
        failure ??= new BackendReset()
        reset(clientTcp)
      }
    }
    // One listener for both TCP sockets (Node calls it with the socket as `this`): an open connection keeps one
    // closure for its closes, not one per socket. A TCP socket that fails closes with `hadError`.
    function onTcpClose(this: Net.Socket, hadError: boolean) {
      if (hadError) onError(this)
      onClose()
    }
    const watch = (socket: Net.Socket, tcp: Net.Socket) => {
      if (tcp === socket) {
        // An error listener the socket already has (the listener's, the dialer's) keeps the error from being thrown.
        if (socket.listenerCount("error") === 0) socket.on("error", constVoid)
        if (socket.closed) {
          if (socket.errored !== null) onError(socket)
          onClose()
        } else {
          socket.on("close", onTcpClose)
        }
        return
      }
      const onSessionError = () => onError(socket)
      if (socket.errored !== null) onSessionError()
      else socket.on("error", onSessionError)
      // An error found on the TCP socket under a TLS session (by a probe while it waited) ends the session too.
      tcp.on("error", () => {
        onSessionError()
        socket.destroy()
      })
      if (socket.closed) onClose()
      else socket.on("close", onClose)
    }
    watch(client, clientTcp)
    watch(backend, backendTcp)
    if (idleTimeoutMs > 0) {
      client.setTimeout(idleTimeoutMs, () => {
        failure ??= new IdleTimeout()
        client.destroy()
        backend.destroy()
      })
    }
    if (clientReads === undefined) forward(client, backend, clientTcp)
    else clientReads.into(client, backend)
    if (backendReads === undefined) forward(backend, client, backendTcp)
    else backendReads.into(backend, client)
    return Effect.sync(() => {
      reset(clientTcp)
      reset(backendTcp)
    })
  })
}
