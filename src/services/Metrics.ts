/**
 * The proxy's metrics, with the names and labels SPEC.md lists. Updates are
 * batched per connection (bytes are added when it closes), never per chunk.
 *
 * @since 0.1.0
 */
import * as Context from "effect/Context"
import type * as Effect from "effect/Effect"

/** Why a client connection failed, as `tcp_proxy_errors_total{kind}` counts it. */
export type ErrorKind = "no_backend" | "dial" | "io"

/** Which step of TLS failed, as `tcp_proxy_tls_failures_total{kind}` counts it. */
export type TlsFailureKind = "client_hello" | "handshake"

/** What a finished client connection adds to the metrics. */
export interface ConnectionSummary {
  readonly bytesIn: number
  readonly bytesOut: number
  readonly durationSeconds: number
  readonly error: ErrorKind | undefined
  /** The connected backend and what crossed it, when one was connected. */
  readonly backend: BackendTraffic | undefined
}

/** Bytes exchanged with one backend over one connection. */
export interface BackendTraffic {
  readonly address: string
  readonly bytesSent: number
  readonly bytesReceived: number
}

/** Records the proxy's metrics and renders the SIGUSR1 snapshot. */
export class Metrics extends Context.Service<Metrics, {
  /** A client connection was accepted. */
  readonly connectionAccepted: Effect.Effect<void>
  /** A client connection was closed by `--max-connections`. */
  readonly connectionRejected: Effect.Effect<void>
  /** A client connection finished; closes its backend connection's books too. */
  readonly connectionClosed: (summary: ConnectionSummary) => Effect.Effect<void>
  /** A dial to a backend started: it counts as an active backend connection from now. */
  readonly dialStarted: (address: string) => Effect.Effect<void>
  /** A dial to a backend failed after `seconds`. */
  readonly dialFailed: (address: string, seconds: number) => Effect.Effect<void>
  /** A dial to a backend connected after `seconds`. */
  readonly dialSucceeded: (address: string, seconds: number) => Effect.Effect<void>
  /** An active health check finished. */
  readonly healthChecked: (address: string, success: boolean) => Effect.Effect<void>
  /** A backend's health state is now `healthy`. */
  readonly healthChanged: (address: string, healthy: boolean) => Effect.Effect<void>
  /** A ClientHello could not be read, or a TLS handshake failed. */
  readonly tlsFailed: (kind: TlsFailureKind) => Effect.Effect<void>
  /** Every series as sorted `name{labels}: value` lines (the SIGUSR1 snapshot). */
  readonly snapshot: Effect.Effect<string>
}>()("effect-tcp-proxy/Metrics") {}
