/**
 * Notices a reset peer on a socket that has stopped reading. When one side
 * of a relay cannot take more, the other side's socket stops reading, and
 * the event loop stops polling it: a reset from that socket's peer (a client
 * that flooded a stuck backend and then aborted) would go unnoticed, and the
 * connection would hold both sockets until the stuck side read again. Every
 * {@link probeIntervalMs} a zero-byte write to each stopped socket asks the
 * kernel: it sends nothing, and fails when the peer has reset, which ends
 * the relay as that side's reset.
 *
 * A stopped socket is registered once per stop and let go at the next sweep
 * after it reads again, so a relay that stops and starts on every chunk pays
 * a set insertion per stop, and no timer of its own.
 *
 * @since 0.1.0
 */
import type * as Net from "node:net"

/** How often stopped sockets are probed. */
export const probeIntervalMs = 2_000

/** One direction of a relay that can stop reading its source. */
export interface Stoppable {
  /** The TCP socket under the source while it has stopped reading; `undefined` while it reads. */
  readonly stopped: Net.Socket | undefined
}

const watched = new Set<Stoppable>()
let sweeper: NodeJS.Timeout | undefined
const nothing = Buffer.alloc(0)

const sweep = (): void => {
  for (const flow of watched) {
    const socket = flow.stopped
    if (socket === undefined || socket.destroyed) watched.delete(flow)
    // A socket whose FIN has been sent refuses writes; its peer's reset waits for the other side to move.
    else if (!socket.writableEnded) socket.write(nothing)
  }
  if (watched.size === 0) {
    clearInterval(sweeper)
    sweeper = undefined
  }
}

/** Probes `flow`'s socket while it stays stopped; the sweep does not keep the process alive. */
export const watch = (flow: Stoppable): void => {
  watched.add(flow)
  sweeper ??= setInterval(sweep, probeIntervalMs).unref()
}
