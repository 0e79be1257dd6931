/**
 * A pool of backends: the default one, or an SNI route's. Each pool owns its
 * membership, its backends' health and active connections, its balancer, and
 * the way a connection gets a connected backend from it.
 *
 * @since 0.1.0
 */
import type * as Net from "node:net"
import * as Context from "effect/Context"
import * as Data from "effect/Data"
import type * as Effect from "effect/Effect"
import type * as Scope from "effect/Scope"
import type * as SubscriptionRef from "effect/SubscriptionRef"
import type { ClientView } from "../domain/balancing/Strategy.ts"
import type { Backend, PoolConfig } from "../domain/Config.ts"
import type { BackendReads } from "./Dialer.ts"
import type { BackendRegistry, BackendStatus, RegistryUpdate } from "./BackendRegistry.ts"
import type { HandshakeError } from "./Routes.ts"

export type { PoolConfig } from "../domain/Config.ts"

/** No backend of the pool may be picked: none is HEALTHY and in service. */
export class NoBackend extends Data.TaggedError("NoBackend")<{}> {
  override get message(): string {
    return "no healthy backends"
  }
}

/** Every backend tried for a connection failed to connect; `backend` is the last one tried. */
export class DialFailed extends Data.TaggedError("DialFailed")<{
  readonly backend: string
  readonly reason: string
}> {
  override get message(): string {
    return `dial ${this.backend} failed: ${this.reason}`
  }
}

/**
 * The proxy itself ran out of a local resource (file descriptors, ports,
 * buffers) while dialling: not the backend's fault, never counted against its health.
 */
export class LocalResource extends Data.TaggedError("LocalResource")<{
  readonly backend: string
  /** What ran out, with the system error code: `the proxy is out of file descriptors (EMFILE)`. */
  readonly reason: string
}> {
  override get message(): string {
    return `dial ${this.backend} failed: ${this.reason}`
  }
}

/** Why a pool could not give a connection a connected backend. */
export type ConnectError = NoBackend | DialFailed | LocalResource

/** TLS toward the backend (`--backend-tls`): turns a connected socket into a TLS session. */
export interface UpstreamTls {
  readonly originate: (socket: Net.Socket, backend: Backend, timeoutMs: number) => Effect.Effect<Net.Socket, HandshakeError>
}

/** What a connection asks of a pool. */
export interface ConnectRequest {
  readonly client: ClientView
  readonly dialTimeoutMs: number
  /** TCP keepalive's idle time on the backend connection; 0 for off. */
  readonly keepAliveMs: number
  /** Backends tried after the first dial fails, while untried candidates remain. */
  readonly retries: number
  /** Bytes written to the backend before anything else: the PROXY header, then a peeked ClientHello. */
  readonly preamble: Buffer | undefined
  readonly tls: UpstreamTls | undefined
}

/** A connected backend, held until the scope given to `connect` closes. */
export interface Upstream {
  readonly backend: BackendStatus
  /** The TCP connection: its byte counts and local address. */
  readonly connection: Net.Socket
  /** What to relay with: the TLS session over the connection when re-encrypting, else the connection. */
  readonly socket: Net.Socket
  /** How `socket` delivers what it reads, when not through `data` events (plain connections). */
  readonly reads: BackendReads | undefined
  /**
   * Calls `callback` once if the backend turns UNHEALTHY while the
   * connection is open (`--close-on-unhealthy`); returns a function that
   * cancels it.
   */
  whenDown(callback: () => void): () => void
}

/** Membership of a new configuration, resolved and ready to be put in force. */
export interface PreparedPool {
  readonly config: PoolConfig
  readonly backends: ReadonlyArray<Backend>
}

/** The settings of the pool being built: the services of a pool read them, and follow their changes. */
export class PoolSettings extends Context.Service<PoolSettings, SubscriptionRef.SubscriptionRef<PoolConfig>>()(
  "effect-tcp-proxy/PoolSettings"
) {}

/** One pool of backends. */
export class Pool extends Context.Service<Pool, {
  readonly registry: BackendRegistry["Service"]
  /**
   * A connected backend for a client: candidates in the balancer's order,
   * dialled until one connects, never the same backend twice, at most
   * `1 + retries` dials. The backend counts the connection as active from
   * the start of its dial until `scope` closes, which also closes the
   * backend connection and adds the bytes it carried to the backend's
   * counters. A failed dial is counted and reported to the backend's health
   * (unless the proxy itself ran out of a local resource). The scope is
   * passed rather than taken from the context, so that a connection holds
   * one scope of its own and no copy of its context.
   */
  readonly connect: (request: ConnectRequest, scope: Scope.Scope) => Effect.Effect<Upstream, ConnectError>
  /** Resolves the members a new configuration names (names in DNS); nothing observes it until `commit`. */
  readonly prepare: (config: PoolConfig) => Effect.Effect<PreparedPool>
  /** Puts prepared settings in force: the registry gets the new membership, the other services the new settings. */
  readonly commit: (prepared: PreparedPool) => Effect.Effect<RegistryUpdate>
}>()("effect-tcp-proxy/Pool") {}
