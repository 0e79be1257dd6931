/**
 * Loopback fixtures for integration tests: backends, clients, a proxy built
 * from the real layers, and conditions to await instead of sleeping.
 */
import { createHash } from "node:crypto"
import { readdirSync } from "node:fs"
import * as Net from "node:net"
import { Context, Effect, Layer, Logger, Metric, Option, Result, Schedule } from "effect"
import * as Config from "../../src/domain/Config.ts"
import { AdminEndpoint } from "../../src/services/AdminEndpoint.ts"
import { Listener } from "../../src/services/Listener.ts"
import { Metrics } from "../../src/services/Metrics.ts"
import { Pool } from "../../src/services/Pool.ts"
import * as TcpProxy from "../../src/TcpProxy.ts"

/** A backend server on 127.0.0.1 with an ephemeral port. */
export interface TestServer {
  readonly port: number
  readonly address: string
  readonly server: Net.Server
  /** Sockets accepted so far. */
  readonly accepted: Array<Net.Socket>
}

/** Starts a server with `onSocket` as its connection handler; closed (with its sockets) when the scope ends. */
export const server = (onSocket: (socket: Net.Socket) => void, port = 0) =>
  Effect.acquireRelease(
    Effect.callback<TestServer>((resume) => {
      const accepted: Array<Net.Socket> = []
      const srv = Net.createServer({ allowHalfOpen: true }, (socket) => {
        accepted.push(socket)
        socket.on("error", () => {})
        onSocket(socket)
      })
      srv.listen(port, "127.0.0.1", () => {
        const bound = srv.address()
        const actual = bound !== null && typeof bound === "object" ? bound.port : 0
        resume(Effect.succeed({ port: actual, address: `127.0.0.1:${actual}`, server: srv, accepted }))
      })
    }),
    ({ accepted, server: srv }) =>
      Effect.callback<void>((resume) => {
        for (const socket of accepted) socket.destroy()
        srv.close(() => resume(Effect.void))
      })
  )

/** An echo backend: every byte back, FIN answered with FIN. */
export const echoServer = (tag = "") =>
  server((socket) => {
    socket.on("data", (chunk) => socket.write(tag === "" ? chunk : Buffer.concat([Buffer.from(tag), chunk])))
    socket.on("end", () => socket.end())
  })

/** A port on 127.0.0.1 that nothing listens on (bound then released). */
export const deadPort = Effect.callback<number>((resume) => {
  const srv = Net.createServer()
  srv.listen(0, "127.0.0.1", () => {
    const bound = srv.address()
    const port = bound !== null && typeof bound === "object" ? bound.port : 0
    srv.close(() => resume(Effect.succeed(port)))
  })
})

/** A client connection to host:port (127.0.0.1 unless given), destroyed when the scope ends. */
export const connect = (port: number, host = "127.0.0.1") =>
  Effect.acquireRelease(
    Effect.callback<Net.Socket, Error>((resume) => {
      const socket = Net.connect({ host, port, allowHalfOpen: true })
      socket.once("error", (error) => resume(Effect.fail(error)))
      socket.once("connect", () => resume(Effect.succeed(socket)))
    }),
    (socket) => Effect.sync(() => socket.destroy())
  )

/** What a socket received until it closed, and whether it closed with an error. */
export interface Received {
  readonly data: Buffer
  readonly error: Error | undefined
}

/**
 * Starts collecting everything `socket` receives, at once (so nothing that
 * arrives before the returned effect runs is missed); the effect completes
 * when the socket has closed.
 */
export const readAll = (socket: Net.Socket): Effect.Effect<Received> => {
  const chunks: Array<Buffer> = []
  let error: Error | undefined
  socket.on("data", (chunk: Buffer) => chunks.push(chunk))
  socket.on("error", (e) => (error = e))
  const closed = new Promise<Received>((resolve) => {
    if (socket.closed) resolve({ data: Buffer.concat(chunks), error })
    else socket.once("close", () => resolve({ data: Buffer.concat(chunks), error }))
  })
  return Effect.promise(() => closed)
}

/** Resolves when `socket` has received at least `size` bytes; returns them. */
export const readAtLeast = (socket: Net.Socket, size: number) =>
  Effect.callback<Buffer, Error>((resume) => {
    const chunks: Array<Buffer> = []
    let length = 0
    const onData = (chunk: Buffer) => {
      chunks.push(chunk)
      length += chunk.length
      if (length >= size) {
        socket.off("data", onData)
        socket.pause()
        resume(Effect.succeed(Buffer.concat(chunks)))
      }
    }
    socket.on("data", onData)
    socket.once("close", () => resume(Effect.fail(new Error(`closed after ${length} of ${size} bytes`))))
    socket.resume()
  })

/** Sends `data`, half-closes, and returns all that comes back until close. */
export const exchange = (port: number, data: string | Buffer) =>
  Effect.scoped(Effect.gen(function*() {
    const socket = yield* connect(port)
    const received = readAll(socket)
    socket.end(data)
    return yield* received
  }))

/** Hex SHA-256 of some bytes. */
export const sha256 = (data: Buffer | Uint8Array): string => createHash("sha256").update(data).digest("hex")

/**
 * Reads `socket` in bursts (paused after every chunk until the next turn of
 * the event loop, so that the writer keeps waiting on it) and hashes what it
 * reads; `onEnd` gets the SHA-256 once the socket's end came.
 */
export const hashInBursts = (socket: Net.Socket, onEnd: (digest: string) => void): void => {
  const hash = createHash("sha256")
  socket.on("data", (chunk: Buffer) => {
    hash.update(chunk)
    socket.pause()
    setImmediate(() => socket.resume())
  })
  socket.on("end", () => onEnd(hash.digest("hex")))
}

/** Open file descriptors of this process (sockets included). */
export const openFds = (): number => readdirSync("/proc/self/fd").length

/** Retries `condition` every 20ms until it holds, for at most `times` tries; fails with `what` otherwise. */
export const eventually = <A>(what: string, condition: Effect.Effect<Option.Option<A>>, times = 250) =>
  condition.pipe(
    Effect.flatMap(Option.match({
      onNone: () => Effect.fail(new Error(`timed out waiting for ${what}`)),
      onSome: Effect.succeed
    })),
    Effect.retry({ schedule: Schedule.spaced("20 millis"), times })
  )

/** Like {@link eventually} for a boolean condition. */
export const until = (what: string, condition: () => boolean, times = 250) =>
  eventually(what, Effect.sync(() => (condition() ? Option.some(true) : Option.none())), times)

/**
 * Waits until `backend` holds a connection that has received bytes, and
 * returns it: the proxy has relayed a client there (health checks send
 * nothing, so they are never taken for it).
 */
export const relayed = (backend: TestServer) =>
  eventually(
    "a relayed connection on the backend",
    Effect.sync(() => Option.fromUndefinedOr(backend.accepted.find((socket) => socket.bytesRead > 0)))
  )

/** Log lines captured by {@link captureLogs}, as `message` plus annotations. */
export interface LogLine {
  readonly level: string
  readonly message: string
  readonly annotations: Readonly<Record<string, unknown>>
}

/** The `connection closed` lines among `lines`. */
export const closedLines = (lines: ReadonlyArray<LogLine>): Array<LogLine> =>
  lines.filter((line) => line.message === "connection closed")

/** A logger layer that records every log line into `lines` (from Debug up). */
export const captureLogs = (lines: Array<LogLine>) =>
  Logger.layer([
    Logger.map(Logger.formatStructured, ({ annotations, level, message }) => {
      lines.push({ level, message: String(message), annotations })
    })
  ])

/** Proxy settings for tests: loopback, ephemeral port, fast checks. */
export const testConfig = (
  backends: ReadonlyArray<string>,
  overrides: Partial<Omit<Config.ProxyConfig, "backends">> = {}
): Config.ProxyConfig =>
  Config.make({
    listen: { host: "127.0.0.1", port: 0 },
    backends: backends.map((text) => Result.getOrThrow(Config.backend(text))),
    ...overrides
  })

/** Builds the proxy in the current scope with a fresh metric registry; returns its port and services. */
export const startProxy = (config: Config.ProxyConfig, overrides: TcpProxy.Overrides = {}) =>
  Effect.map(
    Layer.build(
      TcpProxy.layer(config, overrides).pipe(Layer.provide(Layer.sync(Metric.MetricRegistry, () => new Map())))
    ),
    (context) => ({
      context,
      port: Context.get(context, Listener).address.port,
      adminPort: Option.map(Context.getOption(context, AdminEndpoint), (admin) => admin.address.port),
      registry: Context.get(context, Pool).registry,
      metrics: Context.get(context, Metrics)
    })
  )

/** A flood toward a peer that does not read: 64 KiB chunks, as fast as `socket` takes them, up to `total` bytes. */
export const flood = (socket: Net.Socket, written: Map<Net.Socket, number>, total: number) => {
  const chunk = Buffer.alloc(64 * 1024, 1)
  written.set(socket, 0)
  const pump = () => {
    while (written.get(socket)! < total && !socket.destroyed) {
      written.set(socket, written.get(socket)! + chunk.length)
      if (!socket.write(chunk)) return
    }
  }
  socket.on("drain", pump)
  pump()
}

/** Waits until all `count` floods are blocked (each waits for 'drain', or is done) and nothing moves for a while. */
export const untilBlocked = (written: Map<Net.Socket, number>, count: number, total: number) => {
  let last = -1
  let still = 0
  return until("every flood to be blocked", () => {
    const sum = [...written.values()].reduce((bytes, n) => bytes + n, 0)
    const blocked = written.size === count && [...written].every(([socket, n]) => socket.writableNeedDrain || n >= total)
    still = blocked && sum === last ? still + 1 : 0
    last = sum
    return still >= 10
  }, 1_000)
}

/** Resumes a paused socket and completes with the code of the error it closes with (none for a clean close). */
export const resetSeen = (socket: Net.Socket) =>
  Effect.callback<string | undefined>((resume) => {
    const code = () => (socket.errored as NodeJS.ErrnoException | null)?.code
    if (socket.closed) return resume(Effect.succeed(code()))
    socket.on("close", () => resume(Effect.succeed(code())))
    socket.resume()
  })
