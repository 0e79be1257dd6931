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
import * as Cidr from "../domain/Cidr.ts"
import * as ClientLimits from "../domain/ClientLimits.ts"
import { logs, type ProxyConfig } from "../domain/Config.ts"
import * as ProxyProtocol from "../domain/ProxyProtocol.ts"
import type * as ProxyProtocolReader from "../domain/ProxyProtocolReader.ts"
import { readProxyHeader } from "../net/ProxyHeader.ts"
import { relay, reset } from "../net/Relay.ts"
import * as SharedBufferReads from "../net/SharedBufferReads.ts"
import { AccessLog } from "../services/AccessLog.ts"
import {
  BackendDown,
  Connection,
  type ConnectionError,
  Denied,
  describe,
  type Ending,
  Rejected
} from "../services/Connection.ts"
import { Connections } from "../services/Connections.ts"
import { LogLimits } from "../services/LogLimits.ts"
import { Metrics, type RejectReason } from "../services/Metrics.ts"
import type { ConnectRequest, Upstream } from "../services/Pool.ts"
import { type Entry, Routes } from "../services/Routes.ts"
import { Settings } from "../services/Settings.ts"
import { SharedClientTable } from "../services/Workers.ts"

/**
 * Who may connect (SPEC "Who may connect", "Receiving PROXY protocol"): the
 * access lists as matchers, built once per configuration. Absent when none
 * of it is configured, so the plain path never looks.
 */
interface Guard {
  /** Clients allowed; everyone when absent. */
  readonly allow: Cidr.Matcher | undefined
  /** Clients refused; nobody when absent. */
  readonly deny: Cidr.Matcher | undefined
  /** Peers that must send a PROXY header first; off when absent. */
  readonly acceptProxy: Cidr.Matcher | undefined
  /** Whether a per-IP limit is on. */
  readonly perIp: boolean
}

const matcherOf = (ranges: ReadonlyArray<Cidr.Range>): Cidr.Matcher | undefined =>
  ranges.length === 0 ? undefined : Cidr.matcher(ranges)

const guardOf = (config: ProxyConfig): Guard | undefined => {
  const perIp = Option.isSome(config.maxConnectionsPerIp) || Option.isSome(config.connectionRatePerIp)
  if (config.allow.length === 0 && config.deny.length === 0 && config.acceptProxy.length === 0 && !perIp) return undefined
  return { allow: matcherOf(config.allow), deny: matcherOf(config.deny), acceptProxy: matcherOf(config.acceptProxy), perIp }
}

/** The per-IP limits of a configuration, in the terms of {@link ClientLimits}. */
const clientLimitsOf = (config: ProxyConfig): ClientLimits.Limits => ({
  maxPerIp: Option.getOrUndefined(config.maxConnectionsPerIp),
  rate: Option.getOrUndefined(
    Option.map(config.connectionRatePerIp, (rate) => ({ count: rate.count, perMs: Duration.toMillis(rate.per) }))
  )
})

/** What a connection needs of the configuration, derived once per configuration rather than per connection. */
interface Limits {
  readonly config: ProxyConfig
  readonly dialTimeoutMs: number
  readonly idleTimeoutMs: number
  /** TCP keepalive's idle time on both sockets; 0 for off. */
  readonly keepAliveMs: number
  readonly logsInfo: boolean
  readonly guard: Guard | undefined
}

const limitsOf = (config: ProxyConfig): Limits => ({
  config,
  dialTimeoutMs: Duration.toMillis(config.dialTimeout),
  idleTimeoutMs: Option.match(config.idleTimeout, { onNone: () => 0, onSome: Duration.toMillis }),
  keepAliveMs: Option.match(config.tcpKeepalive, { onNone: () => 0, onSome: Duration.toMillis }),
  logsInfo: logs(config, "info"),
  guard: guardOf(config)
})

/**
 * One client connection's state, read by its exit handler. It is also the
 * client the balancer sees: the address is read from the socket (a system
 * call) only when something needs it.
 */
class ClientConnection implements ClientView {
  readonly started = performance.now()
  /** The client side being relayed: the client socket, or the TLS session over it when terminating. */
  downstream: Net.Socket | undefined = undefined
  upstream: Upstream | undefined = undefined
  /** What the pool holds for the connection (the backend connection and its lease), made when it asks; closed when it ends. */
  scope: Scope.Closeable | undefined = undefined
  /** The proxy's own `IP:PORT` on the backend connection, read when it connects (only for the log line). */
  backendLocal: string | undefined = undefined
  /** The per-IP limits that admitted the connection, to count it closed. */
  admittedBy: ClientLimits.ClientLimits | undefined = undefined
  #ip: string | undefined
  #port: number | undefined
  /** Where the client connected to, as a PROXY header in front said. */
  #destination: ProxyProtocolReader.Endpoint | undefined
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
    return this.#port ??= this.socket.remotePort ?? 0
  }
  /** From now on the client is the one a load balancer's PROXY header names (none for its own health checks). */
  carry(header: ProxyProtocolReader.Header): void {
    if (header.source === undefined) return
    this.#ip = Address.unmapIPv4(header.source.address)
    this.#port = header.source.port
    this.#destination = header.destination
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
      destinationAddress: this.#destination?.address ?? this.socket.localAddress ?? "",
      destinationPort: this.#destination?.port ?? this.socket.localPort ?? 0
    })
    return {
      client: this,
      dialTimeoutMs,
      keepAliveMs: this.limits.keepAliveMs,
      retries: config.retries,
      preamble: header === undefined ? entry.replay : entry.replay === undefined ? header : Buffer.concat([header, entry.replay]),
      tls: entry.upstreamTls
    }
  }
}

/** Fails with {@link BackendDown} when the upstream's backend turns UNHEALTHY. */
const backendDown = (upstream: Upstream) =>
  Effect.callback<never, BackendDown>((resume) => {
    const cancel = upstream.whenDown(() => resume(Effect.fail(new BackendDown())))
    return Effect.sync(cancel)
  })

/** Why a connection was refused, in the words of its warn line. */
const refusals: Record<RejectReason, string> = {
  max_connections: "--max-connections reached",
  per_ip_limit: "--max-connections-per-ip reached for this client",
  rate_limit: "--connection-rate-per-ip exceeded by this client",
  acl: "the client may not connect (--allow, --deny, --accept-proxy)"
}

/** How an exit reads as an ending: done, the failure's, or a shutdown for an interruption. */
const endingOf = (exit: Exit.Exit<void, ConnectionError>): { readonly ending: Ending; readonly error: ConnectionError | undefined } => {
  if (Exit.isSuccess(exit)) return { ending: describe(undefined), error: undefined }
  for (const reason of exit.cause.reasons) {
    if (reason._tag === "Fail") return { ending: describe(reason.error), error: reason.error }
  }
  return { ending: describe("shutdown"), error: undefined }
}

/** How a connection fiber ends once its exit handler has accounted for it: quietly, whatever happened. */
const ended = { onFailure: () => undefined, onSuccess: () => undefined }

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
    const sharedTable = Option.getOrUndefined(yield* Effect.serviceOption(SharedClientTable))
    let limits = limitsOf(SubscriptionRef.getUnsafe(settings))
    /** The per-IP state, made when a configuration first turns a per-IP limit on, kept across reloads. */
    let clientLimits: ClientLimits.ClientLimits | undefined
    const configure = (config: ProxyConfig) => {
      limits = limitsOf(config)
      if (limits.guard?.perIp) {
        if (clientLimits === undefined) {
          clientLimits = ClientLimits.make({ ...clientLimitsOf(config), ...sharedTable })
        }
        else clientLimits.update(clientLimitsOf(config))
      } else clientLimits?.update(clientLimitsOf(config))
    }
    configure(limits.config)

    /** From a connected backend to the end of the relay. */
    const connectAndRelay = (conn: ClientConnection, entry: Entry): Effect.Effect<void, ConnectionError> => {
      conn.downstream = entry.downstream
      // A plain client reads into the shared buffer from now on, also what it sends while its backend is dialled.
      const clientReads = entry.downstream === conn.socket ? SharedBufferReads.adopt(conn.socket) : undefined
      const scope = conn.scope = Scope.makeUnsafe()
      return Effect.flatMap(entry.pool.connect(conn.request(entry), scope), (upstream) => {
        conn.upstream = upstream
        if (conn.limits.logsInfo) {
          const { localAddress, localPort } = upstream.connection
          if (localAddress !== undefined && localPort !== undefined) {
            conn.backendLocal = Address.format(Address.unmapIPv4(localAddress), localPort)
          }
        }
        const relayed = relay({
          client: entry.downstream,
          backend: upstream.socket,
          clientTcp: conn.socket,
          backendTcp: upstream.connection,
          clientReads,
          backendReads: upstream.reads,
          idleTimeoutMs: conn.limits.idleTimeoutMs
        })
        // With --close-on-unhealthy the relay races the backend's fall: the loser is interrupted (both sockets reset).
        return conn.limits.config.closeOnUnhealthy ? Effect.raceFirst(relayed, backendDown(upstream)) : relayed
      })
    }

    /** From an admitted client to the end of the relay: through the front door (TLS, SNI) when there is one. */
    const route = (conn: ClientConnection): Effect.Effect<void, ConnectionError> => {
      const entry = routes.direct(conn.socket)
      return entry !== undefined
        ? connectAndRelay(conn, entry)
        : Effect.flatMap(routes.enter(conn.socket, conn.limits.dialTimeoutMs), (entered) => connectAndRelay(conn, entered))
    }

    /** Whether the guard lets the client in: the access lists, then the global limit, then the per-IP ones. */
    const admit = (conn: ClientConnection, guard: Guard): ConnectionError | undefined => {
      const ip = conn.ip
      if ((guard.allow !== undefined && !guard.allow.matches(ip)) || guard.deny?.matches(ip) === true) return new Denied()
      if (connections.open() >= conn.limits.config.maxConnections) return new Rejected({ reason: "max_connections" })
      if (guard.perIp && clientLimits !== undefined) {
        const verdict = clientLimits.admit(ip, Date.now())
        if (verdict !== "ok") return new Rejected({ reason: verdict })
        conn.admittedBy = clientLimits
      }
      return undefined
    }

    /** The guarded path: the PROXY header from a trusted load balancer, then admission, then the route. */
    const guarded = (conn: ClientConnection, guard: Guard): Effect.Effect<void, ConnectionError> => {
      const admitThenRoute = () => {
        const refused = admit(conn, guard)
        return refused === undefined ? route(conn) : Effect.fail(refused)
      }
      if (guard.acceptProxy === undefined) return Effect.suspend(admitThenRoute)
      if (!guard.acceptProxy.matches(conn.ip)) return Effect.fail(new Denied())
      return Effect.flatMap(readProxyHeader(conn.socket, conn.limits.dialTimeoutMs), (header) => {
        conn.carry(header)
        return admitThenRoute()
      })
    }

    /** Everything up to the relay's end, from within the connection's fiber (it counts the connection accepted); fails with how the connection ended otherwise. */
    const serve = (conn: ClientConnection): Effect.Effect<void, ConnectionError> => {
      metrics.connectionAccepted()
      const guard = conn.limits.guard
      if (guard !== undefined) return guarded(conn, guard)
      if (connections.open() >= conn.limits.config.maxConnections) {
        return Effect.fail(new Rejected({ reason: "max_connections" }))
      }
      return route(conn)
    }

    /** A warn line caused by a client (or by a flood of them): at most 10 a second of each kind. */
    const warn = (conn: ClientConnection, kind: string, message: string) =>
      logLimits.log({ kind, perSecond: 10, level: "warn", message, annotations: { client: conn.peer } })

    /** The metrics and the warn line of an ending that is the client's or the pool's problem. */
    const report = (conn: ClientConnection, error: ConnectionError): Effect.Effect<void> | undefined => {
      switch (error._tag) {
        case "Rejected":
          metrics.connectionRejected(error.reason)
          return warn(conn, "connection refused", `connection refused: ${refusals[error.reason]}`)
        case "Denied":
          metrics.connectionRejected("acl")
          return warn(conn, "connection refused", `connection refused: ${refusals.acl}`)
        case "ProxyHeaderError":
          return warn(conn, "bad PROXY header", error.message)
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

    /**
     * Closes the connection's scope (the backend connection and its lease),
     * then accounts for the connection. The pool's finalizer does its work
     * when the scope closes: what it returns has happened already, and the
     * plain path accounts without another step.
     */
    const finish = (conn: ClientConnection, exit: Exit.Exit<void, ConnectionError>): Effect.Effect<void> => {
      const closing = conn.scope === undefined ? undefined : Scope.closeUnsafe(conn.scope, exit)
      if (closing === undefined || (Exit.isExit(closing) && Exit.isSuccess(closing))) return account(conn, exit)
      return Effect.ensuring(closing, Effect.suspend(() => account(conn, exit)))
    }

    /** Closes what is left of the client side, and accounts for the connection once; the effect logs what it has to. */
    const account = (conn: ClientConnection, exit: Exit.Exit<void, ConnectionError>): Effect.Effect<void> => {
      const { socket } = conn
      const { ending, error } = endingOf(exit)
      conn.admittedBy?.release(conn.ip)
      conn.downstream?.destroy()
      // A connection cut by the end of a drain is reset, so that its client can tell its stream was cut.
      if (ending.end === "shutdown") reset(socket)
      else socket.destroy()
      const durationMs = performance.now() - conn.started
      const bytesIn = socket.bytesRead
      const bytesOut = socket.bytesWritten
      metrics.connectionClosed({
        bytesIn,
        bytesOut,
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
        bytes_in: bytesIn,
        bytes_out: bytesOut,
        duration_ms: Math.round(durationMs),
        end: ending.end
      })
      return reported === undefined ? logged : Effect.andThen(reported, logged)
    }

    return Connection.of({
      handle: (socket) => {
        const config = SubscriptionRef.getUnsafe(settings)
        if (config !== limits.config) configure(config)
        if (limits.keepAliveMs > 0) socket.setKeepAlive(true, limits.keepAliveMs)
        const conn = new ClientConnection(socket, limits)
        // Whatever happened, interruption included, the exit handler closes the backend connection and its place in the count.
        // `serve` runs in the connection's fiber; its closure shares this one's context.
        return Effect.matchCause(Effect.onExit(Effect.suspend(() => serve(conn)), (exit) => finish(conn, exit)), ended)
      }
    })
  })
)
