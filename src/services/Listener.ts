/**
 * The client-facing listener, as seen by those who embed or test the proxy.
 *
 * @since 0.1.0
 */
import * as Context from "effect/Context"
import * as Data from "effect/Data"
import type { HostPort } from "../domain/Address.ts"

/** The listen address could not be bound. */
export class ListenError extends Data.TaggedError("ListenError")<{
  readonly address: string
  readonly cause: NodeJS.ErrnoException
}> {
  override get message(): string {
    const why = this.cause.code === "EADDRINUSE"
      ? "address already in use"
      : this.cause.code === "EACCES"
      ? "permission denied"
      : this.cause.code === "EADDRNOTAVAIL"
      ? "address not available"
      : this.cause.message
    return `cannot listen on ${this.address}: ${why}`
  }
}

/** The listener that is accepting clients. */
export class Listener extends Context.Service<Listener, {
  /** The address actually bound (with the port chosen when `:0` was asked for). */
  readonly address: HostPort
}>()("effect-tcp-proxy/Listener") {}
