/**
 * The life of one client connection: read the ClientHello when SNI routes
 * are configured, pick the target pool, complete TLS when terminating, pick
 * candidates, dial (retrying on the next candidate), relay, then account for
 * it in the registry and metrics and log one `connection closed` line. Every
 * socket is closed however it ends.
 *
 * @since 0.1.0
 */
import type * as Net from "node:net"
import * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
import * as Exit from "effect/Exit"
import * as Layer from "effect/Layer"
import * as Option from "effect/Option"
import * as Result from "effect/Result"
import * as Address from "../domain/Address.ts"
import { type Backend, logs, type ProxyConfig } from "../domain/Config.ts"
import * as ProxyProtocol from "../domain/ProxyProtocol.ts"
import type { ClientInfo } from "../services/Balancer.ts"
import type { BackendRegistry } from "../services/BackendRegistry.ts"
import { ConnectionHandler } from "../services/ConnectionHandler.ts"
import { Dialer } from "../services/Dialer.ts"
import { type ErrorKind, Metrics } from "../services/Metrics.ts"
import { type Pool, Routes, type Target } from "../services/Routes.ts"
import { Settings } from "../services/Settings.ts"
import { relay, type RelayEnd } from "./Relay.ts"
import * as Tls from "./Tls.ts"

/** How a connection ended, the `end` field of its log line. */
export type ConnectionEnd = RelayEnd | "dial_failed" | "no_backend" | "rejected" | "shutdown"

const errorKind = (end: ConnectionEnd): ErrorKind | undefined => {
  switch (end) {
    case "no_backend":
      return "no_backend"
    case "dial_failed":
      return "dial"
    case "client_reset":
    case "backend_reset":
      return "io"
    default:
      return undefined
  }
}

/**
 * The mutable record of one connection, read by its finalizer. It is also the
 * `ClientInfo` the balancer sees: the client's address is read from the
 * socket (a system call) only when something needs it.
 */
class Connection implements ClientInfo {
  readonly started = performance.now()
  end: ConnectionEnd = "shutdown"
  /** The configuration in force when the connection started; it keeps it to the end. */
  readonly config: ProxyConfig
  /** The last backend dialled, shown in the log line. */
  dialled: Backend | undefined = undefined
  /** Where this connection counts as active: from the start of a dial until it fails or the connection ends. */
  activeOn: { readonly backend: Backend; readonly registry: BackendRegistry["Service"] } | undefined = undefined
  /** The client side the relay uses: the client socket, or the TLS session over it. */
  downstream: Net.Socket
  /** The connected backend: its TCP socket, and the TLS session over it when re-encrypting. */
  upstream: Net.Socket | undefined = undefined
  upstreamSession: Net.Socket | undefined = undefined
  readonly client: Net.Socket
  #ip: string | undefined
  constructor(client: Net.Socket, config: ProxyConfig) {
    this.client = client
    this.downstream = client
    this.config = config
    // The log line needs the address after the socket has closed: read it while it is there.
    if (logs(config, "info")) this.#ip = this.ip
  }
  /** The client's IP, IPv4-mapped addresses shown as IPv4; empty when the client is already gone. */
  get ip(): string {
    return this.#ip ??= Address.unmapIPv4(this.client.remoteAddress ?? "")
  }
  get port(): number {
    return this.client.remotePort ?? 0
  }
  /** `IP:PORT` of the client, for logs. */
  get peer(): string {
    // A client that reset before it was accepted has no address left to show.
    return this.ip === "" ? "unknown" : Address.format(this.ip, this.port)
  }
}

/** The connection handler over the services in context; each connection reads the settings as it starts. */
export const layer: Layer.Layer<ConnectionHandler, never, Routes | Metrics | Dialer | Settings> = Layer.effect(
  ConnectionHandler,
  Effect.gen(function*() {
    const routes = yield* Routes
    const metrics = yield* Metrics
    const dialer = yield* Dialer
    const settings = yield* Settings
    /** Client connections being served now, for `--max-connections`. */
    let open = 0

    /** Connects to one backend: TCP, then the PROXY header, then TLS when re-encrypting. */
    const openUpstream = Effect.fnUntraced(function*(conn: Connection, backend: Backend, target: Target) {
      const socket = yield* dialer.dial(backend, conn.config.dialTimeout)
      conn.upstream = socket
      if (conn.config.proxyProtocol !== "off") {
        socket.write(ProxyProtocol.header(conn.config.proxyProtocol, {
          sourceAddress: conn.ip,
          sourcePort: conn.port,
          destinationAddress: conn.client.localAddress ?? "",
          destinationPort: conn.client.localPort ?? 0
        }))
      }
      if (target.upstreamTls === undefined) return socket
      const serverName = backend.name === undefined ? backend.host : backend.name.slice(0, backend.name.lastIndexOf(":"))
      const session = yield* Tls.originate(
        socket,
        serverName,
        target.upstreamTls.ca,
        Duration.toMillis(conn.config.dialTimeout)
      )
      conn.upstreamSession = session
      return session
    })

    /** Dials the candidates in order, up to `retries` after the first; counts every attempt. */
    const connect = Effect.fnUntraced(function*(conn: Connection, pool: Pool, target: Target) {
      const candidates = yield* pool.balancer.candidates(conn)
      if (candidates.length === 0) {
        conn.end = "no_backend"
        yield* Effect.logWarning("no healthy backends").pipe(Effect.annotateLogs({ client: conn.peer }))
        return undefined
      }
      const attempts = Math.min(candidates.length, conn.config.retries + 1)
      for (let i = 0; i < attempts; i++) {
        const backend = candidates[i]!
        conn.dialled = backend
        conn.activeOn = { backend, registry: pool.registry }
        yield* pool.registry.connectionOpened(backend.address)
        yield* metrics.dialStarted(backend.address)
        const started = performance.now()
        const exit = yield* Effect.exit(openUpstream(conn, backend, target))
        const seconds = (performance.now() - started) / 1000
        if (Exit.isSuccess(exit)) {
          yield* metrics.dialSucceeded(backend.address, seconds)
          return exit.value
        }
        conn.upstream?.destroy()
        conn.upstream = undefined
        conn.activeOn = undefined
        yield* pool.registry.connectionClosed(backend.address)
        yield* metrics.dialFailed(backend.address, seconds)
        yield* pool.monitor.report(backend.address, false)
        yield* Effect.logDebug(`dial ${backend.address} failed: ${exit.cause}`)
      }
      conn.end = "dial_failed"
      return undefined
    })

    /** Reads the ClientHello (when routing by SNI) and completes TLS (when terminating). */
    const front = Effect.fnUntraced(function*(conn: Connection) {
      const timeout = Duration.toMillis(conn.config.dialTimeout)
      let prefix: Buffer | undefined
      let serverName: string | undefined
      if (conn.config.routes.length > 0) {
        const hello = yield* Effect.result(Tls.peekClientHello(conn.client, timeout))
        if (Result.isFailure(hello)) {
          yield* metrics.tlsFailed("client_hello")
          yield* Effect.logWarning(hello.failure.message).pipe(Effect.annotateLogs({ client: conn.peer }))
          return undefined
        }
        prefix = hello.success.prefix
        serverName = hello.success.serverName
      }
      const target = yield* routes.select(serverName)
      if (target.mode !== "terminate" || target.context === undefined) return { target, prefix }
      const session = yield* Effect.result(Tls.terminate(conn.client, prefix, target.context, timeout))
      if (Result.isFailure(session)) {
        yield* metrics.tlsFailed("handshake")
        yield* Effect.logWarning(session.failure.message).pipe(Effect.annotateLogs({ client: conn.peer }))
        return undefined
      }
      conn.downstream = session.success
      return { target, prefix: undefined }
    })

    /** Everything before the relay: limits, TLS, routing, dialling. Yields the backend side, or nothing. */
    const prepare = Effect.fnUntraced(function*(conn: Connection) {
      yield* metrics.connectionAccepted
      if (open > conn.config.maxConnections) {
        conn.end = "rejected"
        yield* metrics.connectionRejected
        return undefined
      }
      const entry = yield* front(conn)
      if (entry === undefined) {
        conn.end = "client_reset"
        return undefined
      }
      const upstream = yield* connect(conn, entry.target.pool, entry.target)
      // Passthrough: the ClientHello the peek took goes first.
      if (upstream !== undefined && entry.prefix !== undefined) upstream.write(entry.prefix)
      return upstream
    })

    // The relay runs after `prepare` has returned, so that an open connection holds no generator.
    const serve = (conn: Connection) =>
      Effect.flatMap(prepare(conn), (upstream) =>
        upstream === undefined
          ? Effect.void
          : Effect.map(
            relay(conn.downstream, upstream, Option.match(conn.config.idleTimeout, { onNone: () => 0, onSome: Duration.toMillis })),
            (end) => {
              conn.end = end
            }
          ))

    const finish = (conn: Connection) =>
      Effect.suspend(() => {
        const { activeOn, client, dialled, upstream } = conn
        open--
        conn.downstream.destroy()
        client.destroy()
        conn.upstreamSession?.destroy()
        upstream?.destroy()
        const durationMs = performance.now() - conn.started
        const bytesIn = client.bytesRead
        const bytesOut = client.bytesWritten
        const leaveBackend = activeOn === undefined ? Effect.void : activeOn.registry.connectionClosed(activeOn.backend.address)
        return leaveBackend.pipe(
          Effect.andThen(metrics.connectionClosed({
            bytesIn,
            bytesOut,
            durationSeconds: durationMs / 1000,
            error: errorKind(conn.end),
            backend: activeOn === undefined ? undefined : {
              address: activeOn.backend.address,
              bytesSent: upstream?.bytesWritten ?? 0,
              bytesReceived: upstream?.bytesRead ?? 0
            }
          })),
          Effect.andThen(
            // The line's fields are not even gathered when it would not be written.
            !logs(conn.config, "info") ? Effect.void : Effect.logInfo("connection closed").pipe(Effect.annotateLogs({
              client: conn.peer,
              ...(dialled === undefined ? {} : { backend: dialled.address }),
              bytes_in: bytesIn,
              bytes_out: bytesOut,
              duration_ms: Math.round(durationMs),
              end: conn.end
            }))
          )
        )
      })

    return ConnectionHandler.of({
      handle: (client) =>
        Effect.flatMap(settings.current, (config) => {
          const conn = new Connection(client, config)
          open++
          return serve(conn).pipe(Effect.ensuring(finish(conn)))
        })
    })
  })
)
