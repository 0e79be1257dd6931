/**
 * The front door and SNI routing: what a client connection must show first
 * (its TLS ClientHello, when routes are configured), which pool serves it
 * (exact server names before wildcards, the default pool last), and how its
 * TLS is treated (passed through, or terminated with a certificate).
 *
 * @since 0.1.0
 */
import type * as Net from "node:net"
import * as Context from "effect/Context"
import * as Data from "effect/Data"
import type * as Effect from "effect/Effect"
import type { ProxyConfig } from "../domain/Config.ts"
import type { RegistryUpdate } from "./BackendRegistry.ts"
import type { Pool, UpstreamTls } from "./Pool.ts"

/** A certificate, key or CA file that cannot be used. */
export class TlsConfigError extends Data.TaggedError("TlsConfigError")<{
  readonly file: string
  readonly cause: unknown
}> {
  override get message(): string {
    const why = this.cause instanceof Error ? this.cause.message : String(this.cause)
    return `cannot use ${this.file}: ${why}`
  }
}

/** A ClientHello that is malformed, truncated, too large or too slow. */
export class ClientHelloError extends Data.TaggedError("ClientHelloError")<{ readonly reason: string }> {
  override get message(): string {
    return `bad ClientHello: ${this.reason}`
  }
}

/** A TLS handshake that failed, with a client or with a backend. */
export class HandshakeError extends Data.TaggedError("HandshakeError")<{ readonly reason: string }> {
  override get message(): string {
    return `TLS handshake failed: ${this.reason}`
  }
}

/** Where a client connection goes, and what the proxy relays on each side. */
export interface Entry {
  readonly pool: Pool["Service"]
  /** The client side to relay: the client socket, or the TLS session over it when terminating. */
  readonly downstream: Net.Socket
  /** Bytes the front door read that the backend must get first (a passed-through ClientHello). */
  readonly replay: Buffer | undefined
  /** TLS toward the backend (`--backend-tls`), never for passthrough. */
  readonly upstreamTls: UpstreamTls | undefined
}

/** A pool in force, with the server names it serves (none for the default pool). */
export interface RoutedPool {
  readonly sni: ReadonlyArray<string> | undefined
  readonly pool: Pool["Service"]
}

/** What putting a new configuration's routes in force changed. */
export interface RoutesUpdate {
  /** The default pool's membership changes. */
  readonly backends: RegistryUpdate
  /** Route pools created and closed (by their server names). */
  readonly routesAdded: ReadonlyArray<string>
  readonly routesRemoved: ReadonlyArray<string>
}

/** The front door, over the pools. */
export class Routes extends Context.Service<Routes, {
  /**
   * Reads what a client must show first (its ClientHello, when SNI routes
   * are configured; nothing otherwise, without waiting), picks the pool,
   * and completes the TLS handshake when terminating, within `timeoutMs`.
   */
  readonly enter: (socket: Net.Socket, timeoutMs: number) => Effect.Effect<Entry, ClientHelloError | HandshakeError>
  /**
   * The entry of a client connection when the front door has nothing to
   * read or complete (no TLS termination, no SNI routes), at once; undefined
   * when `enter` is needed.
   */
  readonly direct: (socket: Net.Socket) => Entry | undefined
  /** The pools in force: the default one first, then each route's in the order of the configuration. */
  readonly pools: Effect.Effect<ReadonlyArray<RoutedPool>>
  /**
   * Gets everything a new configuration needs ready (certificates loaded,
   * names resolved, route pools built) without putting any of it in force,
   * and returns the effect that does: a file that cannot be used fails here
   * and changes nothing.
   */
  readonly prepare: (config: ProxyConfig) => Effect.Effect<Effect.Effect<RoutesUpdate>, TlsConfigError>
}>()("effect-tcp-proxy/Routes") {}
