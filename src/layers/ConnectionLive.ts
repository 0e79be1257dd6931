/**
 * The life of one client connection, kept thin: admission, the front door
 * (only when TLS or SNI routes are configured), a connected backend from the
 * pool, the relay, then one exit handler that closes everything and
 * accounts for the connection once (metrics, the warn lines of failures, the
 * access log line). On the plain path the fiber runs no generator and
 * suspends twice: for the dial and for the relay.
 *
 * @since 0.1.0
 */
import type * as Net from "node:net"
import * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
import * as Exit from "effect/Exit"
import * as Layer from "effect/Layer"
import * as Option from "effect/Option"
import * as Scope from "effect/Scope"
import * as SubscriptionRef from "effect/SubscriptionRef"
import * as Address from "../domain/Address.ts"
import type { ClientView } from "../domain/balancing/Strategy.ts"
import { logs, type ProxyConfig } from "../domain/Config.ts"
import * as ProxyProtocol from "../domain/ProxyProtocol.ts"
import { relay } from "../net/Relay.ts"
import { AccessLog } from "../services/AccessLog.ts"
import { Connection, type ConnectionError, describe, type Ending, Rejected } from "../services/Connection.ts"
import { Connections } from "../services/Connections.ts"
import { LogLimits } from "../services/LogLimits.ts"
import { Metrics, type RejectReason } from "../services/Metrics.ts"
import type { ConnectRequest, Upstream } from "../services/Pool.ts"
import { type Entry, Routes } from "../services/Routes.ts"
import { Settings } from "../services/Settings.ts"

/** What a connection needs of the configuration, derived once per configuration rather than per connection. */
interface Limits {
  readonly config: ProxyConfig
  readonly dialTimeoutMs: number
  readonly idleTimeoutMs: number
  readonly logsInfo: boolean
}

const limitsOf = (config: ProxyConfig): Limits => ({
  config,
  dialTimeoutMs: Duration.toMillis(config.dialTimeout),
  idleTimeoutMs: Option.match(config.idleTimeout, { onNone: () => 0, onSome: Duration.toMillis }),
  logsInfo: logs(config, "info")
})

/**
 * One client connection's state, read by its exit handler. It is also the
 * client the balancer sees: the address is read from the socket (a system
 * call) only when something needs it.
 */
class ClientConnection implements ClientView {
  readonly started = performance.now()
  entry: Entry | undefined = undefined
  upstream: Upstream | undefined = undefined
  /** The proxy's own `IP:PORT` on the backend connection, read when it connects (only for the log line). */
  backendLocal: string | undefined = undefined
  #ip: string | undefined
  readonly socket: Net.Socket
  readonly limits: Limits
  constructor(socket: Net.Socket, limits: Limits) {
    this.socket = socket
    this.limits = limits
    // The log line needs the address after the socket has closed: read it while it is there.
    if (limits.logsInfo) this.#ip = this.ip
  }
  /** The client's IP, IPv4-mapped addresses shown as IPv4; empty when the client is already gone. */
  get ip(): string {
    return this.#ip ??= Address.unmapIPv4(this.socket.remoteAddress ?? "")
  }
  get port(): number {
    return this.socket.remotePort ?? 0
  }
  /** `IP:PORT` of the client, for logs. */
  get peer(): string {
    // A client that reset before it was accepted has no address left to show.
    return this.ip === "" ? "unknown" : Address.format(this.ip, this.port)
  }
  /** What the pool is asked for: the PROXY header (when on) and the bytes the front door read go first. */
  request(entry: Entry): ConnectRequest {
    const { config, dialTimeoutMs } = this.limits
    const header = config.proxyProtocol === "off" ? undefined : ProxyProtocol.header(config.proxyProtocol, {
      sourceAddress: this.ip,
      sourcePort: this.port,
      destinationAddress: this.socket.localAddress ?? "",
      destinationPort: this.socket.localPort ?? 0
    })
    return {
      client: this,
      dialTimeoutMs,
      retries: config.retries,
      preamble: header === undefined ? entry.replay : entry.replay === undefined ? header : Buffer.concat([header, entry.replay]),
      tls: entry.upstreamTls
    }
  }
}

/** Why a connection was refused, in the words of its warn line. */
const refusals: Record<RejectReason, string> = {
  max_connections: "--max-connections reached",
  per_ip_limit: "--max-connections-per-ip reached for this client",
  rate_limit: "--connection-rate-per-ip exceeded by this client",
  acl: "the client may not connect"
}

/** How an exit reads as an ending: done, the failure's, or a shutdown for an interruption. */
const endingOf = (exit: Exit.Exit<void, ConnectionError>): { readonly ending: Ending; readonly error: ConnectionError | undefined } => {
  if (Exit.isSuccess(exit)) return { ending: describe(undefined), error: undefined }
  for (const reason of exit.cause.reasons) {
    if (reason._tag === "Fail") return { ending: describe(reason.error), error: reason.error }
  }
  return { ending: describe("shutdown"), error: undefined }
}

/** The connection handler over the services in context; each connection reads the settings as it starts. */
export const layer: Layer.Layer<Connection, never, Routes | Metrics | Settings | Connections | LogLimits> = Layer.effect(
  Connection,
  Effect.gen(function*() {
    const routes = yield* Routes
    const metrics = yield* Metrics
    const settings = yield* Settings
    const connections = yield* Connections
    const accessLog = yield* AccessLog
    const logLimits = yield* LogLimits
    let limits = limitsOf(SubscriptionRef.getUnsafe(settings))

    /** From a connected backend to the end of the relay. */
    const connectAndRelay = (conn: ClientConnection, entry: Entry): Effect.Effect<void, ConnectionError, Scope.Scope> => {
      conn.entry = entry
      return Effect.flatMap(entry.pool.connect(conn.request(entry)), (upstream) => {
        conn.upstream = upstream
        if (conn.limits.logsInfo) {
          const { localAddress, localPort } = upstream.connection
          if (localAddress !== undefined && localPort !== undefined) {
            conn.backendLocal = Address.format(Address.unmapIPv4(localAddress), localPort)
          }
        }
        return relay({
          client: entry.downstream,
          backend: upstream.socket,
          clientTcp: conn.socket,
          backendTcp: upstream.connection,
          backendReads: upstream.reads,
          idleTimeoutMs: conn.limits.idleTimeoutMs
        })
      })
    }

    /** Everything up to the relay's end; fails with how the connection ended otherwise. */
    const serve = (conn: ClientConnection): Effect.Effect<void, ConnectionError, Scope.Scope> =>
      Effect.suspend(() => {
        metrics.connectionAccepted()
        if (connections.open() >= conn.limits.config.maxConnections) {
          return Effect.fail(new Rejected({ reason: "max_connections" }))
        }
        const entry = routes.direct(conn.socket)
        return entry !== undefined
          ? connectAndRelay(conn, entry)
          : Effect.flatMap(routes.enter(conn.socket, conn.limits.dialTimeoutMs), (entered) => connectAndRelay(conn, entered))
      })

    /** A warn line caused by a client (or by a flood of them): at most 10 a second of each kind. */
    const warn = (conn: ClientConnection, kind: string, message: string) =>
      logLimits.log({ kind, perSecond: 10, level: "warn", message, annotations: { client: conn.peer } })

    /** The metrics and the warn line of an ending that is the client's or the pool's problem. */
    const report = (conn: ClientConnection, error: ConnectionError): Effect.Effect<void> | undefined => {
      switch (error._tag) {
        case "Rejected":
          metrics.connectionRejected(error.reason)
          return warn(conn, "connection refused", `connection refused: ${refusals[error.reason]}`)
        case "ClientHelloError":
          metrics.tlsFailed("client_hello")
          return warn(conn, "bad ClientHello", error.message)
        case "HandshakeError":
          metrics.tlsFailed("handshake")
          return warn(conn, "TLS handshake failed", error.message)
        case "NoBackend":
          return warn(conn, "no healthy backends", error.message)
        default:
          return undefined
      }
    }

    /** Closes what is left, and accounts for the connection once. */
    const finish = (conn: ClientConnection, exit: Exit.Exit<void, ConnectionError>): Effect.Effect<void> =>
      Effect.suspend(() => {
        const { socket } = conn
        const { ending, error } = endingOf(exit)
        conn.entry?.downstream.destroy()
        // A connection cut by the end of a drain is reset, so that its client can tell its stream was cut.
        if (ending.end === "shutdown") socket.resetAndDestroy()
        else socket.destroy()
        const durationMs = performance.now() - conn.started
        metrics.connectionClosed({
          bytesIn: socket.bytesRead,
          bytesOut: socket.bytesWritten,
          durationSeconds: durationMs / 1000,
          error: ending.error
        })
        const reported = error === undefined ? undefined : report(conn, error)
        if (!conn.limits.logsInfo) return reported ?? Effect.void
        const logged = accessLog.write({
          client: conn.peer,
          backend: conn.upstream?.backend.backend.address ??
            (error?._tag === "DialFailed" || error?._tag === "LocalResource" ? error.backend : undefined),
          backend_local: conn.backendLocal,
          bytes_in: socket.bytesRead,
          bytes_out: socket.bytesWritten,
          duration_ms: Math.round(durationMs),
          end: ending.end
        })
        return reported === undefined ? logged : Effect.andThen(reported, logged)
      })

    return Connection.of({
      handle: (socket) => {
        const config = SubscriptionRef.getUnsafe(settings)
        if (config !== limits.config) limits = limitsOf(config)
        const conn = new ClientConnection(socket, limits)
        // The scope holds the backend connection (and its place in the backend's count) until the connection ends.
        return Effect.scoped(serve(conn)).pipe(
          Effect.onExit((exit) => finish(conn, exit)),
          Effect.ignore
        )
      }
    })
  })
)
