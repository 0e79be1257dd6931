/**
 * Resolves host names to IP addresses, for backends given by name.
 *
 * @since 0.1.0
 */
import * as Context from "effect/Context"
import * as Data from "effect/Data"
import type * as Effect from "effect/Effect"

/** A name that could not be resolved. */
export class ResolveError extends Data.TaggedError("ResolveError")<{
  readonly host: string
  readonly cause: unknown
}> {
  override get message(): string {
    return `cannot resolve ${this.host}: ${this.cause instanceof Error ? this.cause.message : String(this.cause)}`
  }
}

/** Looks up the addresses of a host name. */
export class Resolver extends Context.Service<Resolver, {
  /** Every address the name resolves to now (IPv4 and IPv6), without duplicates. */
  readonly resolve: (host: string) => Effect.Effect<ReadonlyArray<string>, ResolveError>
}>()("effect-tcp-proxy/Resolver") {}
