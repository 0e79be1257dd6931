/**
 * Opens TCP connections to backends, for real connections and health checks alike.
 *
 * @since 0.1.0
 */
import type * as Net from "node:net"
import * as Context from "effect/Context"
import * as Data from "effect/Data"
import type * as Effect from "effect/Effect"
import type { Backend } from "../domain/Config.ts"

/**
 * Why a dial failed. `local`: the proxy itself ran out of something
 * (descriptors, ports, buffers), which says nothing about the backend.
 */
export type DialFailure = "timeout" | "refused" | "unreachable" | "reset" | "local" | "other"

/** A dial that failed: refused, unreachable, not connected within the timeout, or out of a local resource. */
export class DialError extends Data.TaggedError("DialError")<{
  readonly backend: string
  readonly reason: DialFailure
  /** The system error code (`ECONNREFUSED`, `EMFILE`...), when there is one. */
  readonly code: string | undefined
}> {
  /** Why, without the backend: `refused (ECONNREFUSED)`, `the proxy is out of file descriptors (EMFILE)`. */
  get detail(): string {
    const reason = this.reason === "local" ? `the proxy is out of ${resourceOf(this.code)}` : this.reason
    return `${reason}${this.code === undefined ? "" : ` (${this.code})`}`
  }

  override get message(): string {
    return `dial ${this.backend}: ${this.detail}`
  }
}

/** What a local failure's system error code says the proxy ran out of. */
const resourceOf = (code: string | undefined): string => {
  switch (code) {
    case "EMFILE":
    case "ENFILE":
      return "file descriptors"
    case "EADDRNOTAVAIL":
      return "local ports"
    default:
      return "memory or buffers"
  }
}

/**
 * How a backend connection delivers what it reads when not through `data`
 * events: Node's `onread` options for the socket, and where the bytes go once
 * the relay starts. Reading this way lets backpressure stop the socket at
 * once, so a connection whose client does not read holds one read's worth of
 * the backend's bytes at most. A plain client socket the proxy accepted is
 * switched to reading the same way before its backend is dialled.
 */
export interface BackendReads {
  readonly onread: Net.OnReadOpts
  /**
   * From now on writes what `from` (the socket dialled with {@link onread})
   * reads into `to`, what it read before first, as fast as `to` takes it;
   * `from`'s end becomes `to`'s.
   */
  readonly into: (from: Net.Socket, to: Net.Socket) => void
}

/** Connects to backends. */
export class Dialer extends Context.Service<Dialer, {
  /**
   * Connects to a backend with half-close allowed, failing when not
   * connected within `timeoutMs`. Interrupting the dial destroys the socket.
   * With `reads`, the socket delivers what it reads through them.
   */
  readonly dial: (backend: Backend, timeoutMs: number, reads?: BackendReads) => Effect.Effect<Net.Socket, DialError>
}>()("effect-tcp-proxy/Dialer") {}
