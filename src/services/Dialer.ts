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
  override get message(): string {
    return `dial ${this.backend}: ${this.reason}${this.code === undefined ? "" : ` (${this.code})`}`
  }
}

/** Connects to backends. */
export class Dialer extends Context.Service<Dialer, {
  /**
   * Connects to a backend with half-close allowed, failing when not
   * connected within `timeoutMs`. Interrupting the dial destroys the socket.
   */
  readonly dial: (backend: Backend, timeoutMs: number) => Effect.Effect<Net.Socket, DialError>
}>()("effect-tcp-proxy/Dialer") {}
