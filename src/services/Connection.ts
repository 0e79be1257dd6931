/**
 * Serves one accepted client connection from start to end, and the ways a
 * connection can end: each is a tagged error in the connection's error
 * channel (interruption is a shutdown), mapped in one place ({@link describe})
 * to the `end` word of its log line and the `errors_total` kind.
 *
 * @since 0.1.0
 */
import type * as Net from "node:net"
import * as Context from "effect/Context"
import * as Data from "effect/Data"
import type * as Effect from "effect/Effect"
import type { EndWord } from "../domain/AccessLine.ts"
import type { ErrorKind, RejectReason } from "./Metrics.ts"
import type { ConnectError } from "./Pool.ts"
import type { ClientHelloError, HandshakeError } from "./Routes.ts"

export type { EndWord } from "../domain/AccessLine.ts"

/** Refused at once by a limit (`--max-connections`, the per-IP limits). */
export class Rejected extends Data.TaggedError("Rejected")<{ readonly reason: RejectReason }> {}

/** Refused at once by the access lists, or from a peer that may not send a PROXY header. */
export class Denied extends Data.TaggedError("Denied")<{}> {}

/** A peer in `--accept-proxy` sent no PROXY header, a malformed one, or not within `--timeout`. */
export class ProxyHeaderError extends Data.TaggedError("ProxyHeaderError")<{ readonly reason: string }> {
  override get message(): string {
    return `bad PROXY header: ${this.reason}`
  }
}

/** The client reset the connection, or its socket failed. */
export class ClientReset extends Data.TaggedError("ClientReset")<{}> {}

/** The backend reset the connection, or its socket failed. */
export class BackendReset extends Data.TaggedError("BackendReset")<{}> {}

/** No byte went either way for `--idle-timeout`. */
export class IdleTimeout extends Data.TaggedError("IdleTimeout")<{}> {}

/** The backend turned UNHEALTHY and `--close-on-unhealthy` closed its connections. */
export class BackendDown extends Data.TaggedError("BackendDown")<{}> {}

/** How a relay that did not finish cleanly ended. */
export type RelayError = ClientReset | BackendReset | IdleTimeout

/** Every way a connection can end other than `done` and `shutdown` (an interruption). */
export type ConnectionError =
  | Rejected
  | Denied
  | ProxyHeaderError
  | ClientHelloError
  | HandshakeError
  | ConnectError
  | RelayError
  | BackendDown

/** What an ending means for the log line and for `tcp_proxy_errors_total`. */
export interface Ending {
  readonly end: EndWord
  readonly error: ErrorKind | undefined
}

const ending = (end: EndWord, error: ErrorKind | undefined): Ending => ({ end, error })
const endings = {
  done: ending("done", undefined),
  shutdown: ending("shutdown", undefined),
  Rejected: ending("rejected", undefined),
  Denied: ending("denied", undefined),
  ProxyHeaderError: ending("protocol_error", "protocol"),
  ClientHelloError: ending("protocol_error", "protocol"),
  HandshakeError: ending("protocol_error", "protocol"),
  NoBackend: ending("no_backend", "no_backend"),
  DialFailed: ending("dial_failed", "dial"),
  LocalResource: ending("dial_failed", "local"),
  ClientReset: ending("client_reset", "io"),
  BackendReset: ending("backend_reset", "io"),
  IdleTimeout: ending("idle_timeout", undefined),
  BackendDown: ending("backend_down", undefined)
} as const

/** The ending of a connection that finished cleanly (`undefined`), was interrupted (`"shutdown"`), or failed. */
export const describe = (error: ConnectionError | undefined | "shutdown"): Ending =>
  error === undefined ? endings.done : error === "shutdown" ? endings.shutdown : endings[error._tag]

/** Handles client connections: admit, route, connect, relay, account, log. */
export class Connection extends Context.Service<Connection, {
  /**
   * Serves one client socket until both sides are done. Whatever happens,
   * including interruption, both sockets are closed when it ends, and the
   * connection is accounted for once.
   */
  readonly handle: (socket: Net.Socket) => Effect.Effect<void>
}>()("effect-tcp-proxy/Connection") {}
