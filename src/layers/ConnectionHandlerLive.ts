/**
 * The life of one client connection: pick candidates, dial (retrying on the
 * next candidate), relay, then account for it in the registry and metrics and
 * log one `connection closed` line. Both sockets are closed however it ends.
 *
 * @since 0.1.0
 */
import type * as Net from "node:net"
import { Duration, Effect, Exit, Layer, Option } from "effect"
import * as Address from "../domain/Address.ts"
import type { Backend, ProxyConfig } from "../domain/Config.ts"
import * as ProxyProtocol from "../domain/ProxyProtocol.ts"
import { Balancer } from "../services/Balancer.ts"
import { BackendRegistry } from "../services/BackendRegistry.ts"
import { ConnectionHandler } from "../services/ConnectionHandler.ts"
import { Dialer } from "../services/Dialer.ts"
import { HealthMonitor } from "../services/HealthMonitor.ts"
import { type ErrorKind, Metrics } from "../services/Metrics.ts"
import { Settings } from "../services/Settings.ts"
import { relay, type RelayEnd } from "./Relay.ts"

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

/** Whether the `connection closed` line would be written: its fields are not even gathered otherwise. */
const logsInfo = (config: ProxyConfig): boolean => config.logLevel === "info" || config.logLevel === "debug"

/** The mutable record of one connection, read by its finalizer. */
class Connection {
  readonly started = performance.now()
  readonly peer: string
  end: ConnectionEnd = "shutdown"
  /** The configuration in force when the connection started; it keeps it to the end. */
  config: ProxyConfig
  /** The last backend dialled, shown in the log line. */
  dialled: Backend | undefined = undefined
  /** The backend this connection counts as active on: from the start of a dial until it fails or the connection ends. */
  activeOn: Backend | undefined = undefined
  /** The connected backend socket. */
  upstream: Net.Socket | undefined = undefined
  readonly client: Net.Socket
  readonly ip: string
  constructor(client: Net.Socket, ip: string, config: ProxyConfig) {
    this.client = client
    this.ip = ip
    this.config = config
    // A client that reset before it was accepted has no address left to show.
    this.peer = ip === "" ? "unknown" : Address.format(ip, client.remotePort ?? 0)
  }
}

/** The connection handler over the services in context; each connection reads the settings as it starts. */
export const layer: Layer.Layer<
  ConnectionHandler,
  never,
  Balancer | BackendRegistry | HealthMonitor | Metrics | Dialer | Settings
> = Layer.effect(
  ConnectionHandler,
  Effect.gen(function*() {
    const balancer = yield* Balancer
    const registry = yield* BackendRegistry
    const monitor = yield* HealthMonitor
    const metrics = yield* Metrics
    const dialer = yield* Dialer
    const settings = yield* Settings
    /** Client connections being served now, for `--max-connections`. */
    let open = 0

    /** Dials the candidates in order, up to `retries` after the first; counts every attempt. */
    const connect = Effect.fnUntraced(function*(conn: Connection, candidates: ReadonlyArray<Backend>) {
      const { dialTimeout, retries } = conn.config
      const attempts = Math.min(candidates.length, retries + 1)
      for (let i = 0; i < attempts; i++) {
        const backend = candidates[i]!
        conn.dialled = backend
        conn.activeOn = backend
        yield* registry.connectionOpened(backend.address)
        yield* metrics.dialStarted(backend.address)
        const started = performance.now()
        const exit = yield* Effect.exit(dialer.dial(backend, dialTimeout))
        const seconds = (performance.now() - started) / 1000
        if (Exit.isSuccess(exit)) {
          yield* metrics.dialSucceeded(backend.address, seconds)
          return exit.value
        }
        conn.activeOn = undefined
        yield* registry.connectionClosed(backend.address)
        yield* metrics.dialFailed(backend.address, seconds)
        yield* monitor.report(backend.address, false)
        yield* Effect.logDebug(`dial ${backend.address} failed: ${exit.cause}`)
      }
      return undefined
    })

    const serve = Effect.fnUntraced(function*(conn: Connection) {
      yield* metrics.connectionAccepted
      if (open > conn.config.maxConnections) {
        conn.end = "rejected"
        return yield* metrics.connectionRejected
      }
      const candidates = yield* balancer.candidates({ ip: conn.ip, port: conn.client.remotePort ?? 0 })
      if (candidates.length === 0) {
        conn.end = "no_backend"
        return yield* Effect.logWarning("no healthy backends").pipe(Effect.annotateLogs({ client: conn.peer }))
      }
      const upstream = yield* connect(conn, candidates)
      if (upstream === undefined) {
        conn.end = "dial_failed"
        return
      }
      conn.upstream = upstream
      const { idleTimeout, proxyProtocol } = conn.config
      const header = ProxyProtocol.header(proxyProtocol, {
        sourceAddress: conn.ip,
        sourcePort: conn.client.remotePort ?? 0,
        destinationAddress: conn.client.localAddress ?? "",
        destinationPort: conn.client.localPort ?? 0
      })
      if (header !== undefined) upstream.write(header)
      conn.end = yield* relay(
        conn.client,
        upstream,
        Option.match(idleTimeout, { onNone: () => 0, onSome: Duration.toMillis })
      )
    })

    const finish = (conn: Connection) =>
      Effect.suspend(() => {
        const { client, upstream, activeOn, dialled } = conn
        open--
        client.destroy()
        upstream?.destroy()
        const durationMs = performance.now() - conn.started
        const bytesIn = client.bytesRead
        const bytesOut = client.bytesWritten
        const leaveBackend = activeOn === undefined ? Effect.void : registry.connectionClosed(activeOn.address)
        return leaveBackend.pipe(
          Effect.andThen(metrics.connectionClosed({
            bytesIn,
            bytesOut,
            durationSeconds: durationMs / 1000,
            error: errorKind(conn.end),
            backend: activeOn === undefined ? undefined : {
              address: activeOn.address,
              bytesSent: upstream?.bytesWritten ?? 0,
              bytesReceived: upstream?.bytesRead ?? 0
            }
          })),
          Effect.andThen(!logsInfo(conn.config) ? Effect.void : Effect.logInfo("connection closed").pipe(Effect.annotateLogs({
            client: conn.peer,
            ...(dialled === undefined ? {} : { backend: dialled.address }),
            bytes_in: bytesIn,
            bytes_out: bytesOut,
            duration_ms: Math.round(durationMs),
            end: conn.end
          })))
        )
      })

    return ConnectionHandler.of({
      handle: (client) =>
        Effect.flatMap(settings.current, (config) => {
          const conn = new Connection(client, Address.unmapIPv4(client.remoteAddress ?? ""), config)
          open++
          return serve(conn).pipe(Effect.ensuring(finish(conn)))
        })
    })
  })
)
