/**
 * SNI routing: which pool of backends serves a connection, and how its TLS
 * is treated, by the server name of its ClientHello.
 *
 * @since 0.1.0
 */
import type { SecureContext } from "node:tls"
import * as Context from "effect/Context"
import * as Data from "effect/Data"
import type * as Effect from "effect/Effect"
import type { ProxyConfig } from "../domain/Config.ts"
import type { Balancer } from "./Balancer.ts"
import type { BackendRegistry } from "./BackendRegistry.ts"
import type { HealthMonitor } from "./HealthMonitor.ts"

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

/** A pool of backends with its own registry, balancer and health monitor. */
export interface Pool {
  readonly registry: BackendRegistry["Service"]
  readonly balancer: Balancer["Service"]
  readonly monitor: HealthMonitor["Service"]
}

/** Where a connection goes and what happens to its bytes. */
export interface Target {
  /**
   * `plain`: relay as is (no TLS configured); `passthrough`: relay the TLS
   * bytes untouched, the ClientHello included; `terminate`: complete the
   * handshake with `context` and relay the plaintext.
   */
  readonly mode: "plain" | "passthrough" | "terminate"
  readonly pool: Pool
  readonly context: SecureContext | undefined
  /** Open TLS toward the backend (`--backend-tls`), verified against `ca` when set; never for passthrough. */
  readonly upstreamTls: { readonly ca: Buffer | undefined } | undefined
}

/** Picks the target for a server name. */
export class Routes extends Context.Service<Routes, {
  /** The first route whose names match (exact names before wildcards); the top-level pool otherwise. */
  readonly select: (serverName: string | undefined) => Effect.Effect<Target>
  /**
   * Loads the certificates of `config` (failing on a file that cannot be used,
   * with nothing changed) and puts its routes in force: route pools are
   * rebuilt when the routes change, certificates are re-read every time.
   */
  readonly reload: (config: ProxyConfig) => Effect.Effect<void, TlsConfigError>
}>()("effect-tcp-proxy/Routes") {}

