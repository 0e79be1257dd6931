/**
 * Opens TCP connections to backends, for real connections and health checks alike.
 *
 * @since 0.1.0
 */
import type * as Net from "node:net"
import * as Context from "effect/Context"
import * as Data from "effect/Data"
import type * as Duration from "effect/Duration"
import type * as Effect from "effect/Effect"
import type { Backend } from "../domain/Config.ts"

/** A dial that failed: refused, unreachable, or not connected within the timeout. */
export class DialError extends Data.TaggedError("DialError")<{
  readonly backend: string
  readonly reason: "timeout" | "refused" | "unreachable" | "other"
  readonly cause?: unknown
}> {
  override get message(): string {
    return `dial ${this.backend}: ${this.reason}`
  }
}

/** Connects to backends. */
export class Dialer extends Context.Service<Dialer, {
  /**
   * Connects to a backend with half-close allowed, failing when not connected
   * within `timeout`. Interrupting the dial destroys the socket.
   */
  readonly dial: (backend: Backend, timeout: Duration.Duration) => Effect.Effect<Net.Socket, DialError>
}>()("effect-tcp-proxy/Dialer") {}
