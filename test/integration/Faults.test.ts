/**
 * Faults over loopback: peers that reset, stall, vanish or flood, and the
 * connection limit. Each test checks that the fault stays with its own
 * connection: the proxy stays up, other clients' bytes pass untouched, and no
 * socket or file descriptor is left behind.
 */
import { fork } from "node:child_process"
import { randomBytes } from "node:crypto"
import { readFileSync } from "node:fs"
import { fileURLToPath } from "node:url"
import * as Net from "node:net"
import { assert, describe, it } from "@effect/vitest"
import { Duration, Effect, Option } from "effect"
import { listeningPort, spawnCli } from "./cli.ts"
import {
  captureLogs,
  closedLines,
  connect,
  echoServer,
  eventually,
  exchange,
  type LogLine,
  openFds,
  readAll,
  readAtLeast,
  type Received,
  server,
  sha256,
  startProxy,
  testConfig,
  until
} from "./helpers.ts"

const MiB = 1024 * 1024


/** The `connection closed` line of the client whose local port is `port`, once it has been logged. */
const lineOf = (lines: ReadonlyArray<LogLine>, port: number) =>
  eventually(
    `the log line of client port ${port}`,
    Effect.sync(() =>
      Option.fromNullishOr(closedLines(lines).find((line) => line.annotations.client === `127.0.0.1:${port}`))
    )
  )

/** The value of the series `series` (name plus labels) in a snapshot, if present. */
const valueIn = (snapshot: string, series: string): number | undefined => {
  const line = snapshot.split("\n").find((l) => l.startsWith(`${series}: `))
  return line === undefined ? undefined : Number(line.slice(series.length + 2))
}

type Proxy = Effect.Success<ReturnType<typeof startProxy>>

/** Waits until the series `series` of `proxy` reads `expected`. */
const metricReaches = (proxy: Proxy, series: string, expected: number, times = 250) =>
  eventually(
    `${series} to be ${expected}`,
    Effect.map(proxy.metrics.snapshot, (snapshot) => valueIn(snapshot, series) === expected ? Option.some(true) : Option.none()),
    times
  )

/** Writes `payload` and checks that exactly the same bytes come back (the socket is paused again after). */
const roundTrip = (socket: Net.Socket, payload: Buffer) =>
  Effect.gen(function*() {
    socket.write(payload)
    const got = yield* readAtLeast(socket, payload.length)
    assert.strictEqual(got.length, payload.length)
    assert.strictEqual(sha256(got), sha256(payload))
  })

/** Half-closes a client that may be paused and returns what it receives until it closes. */
const finishClient = (socket: Net.Socket): Effect.Effect<Received> => {
  const received = readAll(socket)
  socket.end()
  socket.resume()
  return received
}

/** Records what a socket receives as it comes, so tests can wait for part of it before the close. */
const track = (socket: Net.Socket) => {
  const chunks: Array<Buffer> = []
  let error: Error | undefined
  socket.on("data", (chunk: Buffer) => chunks.push(chunk))
  socket.on("error", (e) => (error = e))
  const closed = readAll(socket)
  return {
    received: () => Buffer.concat(chunks),
    error: () => error,
    closed
  }
}

/**
 * A backend whose first chunk picks how it behaves on that connection:
 * - `RESET`: sends "partial response", then waits to be reset by the test;
 * - `STREAM`: writes 64 KiB chunks, respecting backpressure, until it is closed;
 * - `SILENT`: never sends a byte, answers a FIN with a FIN;
 * - anything else: echoes.
 * A connection that sends nothing (a health check) is answered FIN for FIN.
 */
const modalBackend = () => {
  const resetting: Array<Net.Socket> = []
  const streaming: Array<Net.Socket> = []
  const silent: Array<Net.Socket> = []
  return Effect.map(
    server((socket) => {
      socket.on("end", () => socket.end())
      socket.once("data", (first: Buffer) => {
        const command = first.toString("latin1")
        if (command.startsWith("RESET")) {
          resetting.push(socket)
          socket.write("partial response")
        } else if (command.startsWith("STREAM")) {
          streaming.push(socket)
          const chunk = Buffer.alloc(64 * 1024, 7)
          const pump = () => {
            while (!socket.destroyed && socket.write(chunk)) {
              // keep writing until the socket asks to wait
            }
          }
          socket.on("drain", pump)
          pump()
        } else if (command.startsWith("SILENT")) {
          silent.push(socket)
        } else {
          socket.write(first)
          socket.on("data", (chunk: Buffer) => socket.write(chunk))
        }
      })
    }),
    (backend) => ({ ...backend, resetting, streaming, silent })
  )
}

/** Echo payloads that cannot be mistaken for a command of {@link modalBackend}. */
const echoPayload = (size: number) => Buffer.concat([Buffer.from("ECHO"), randomBytes(size)])

/** An echo backend in a child process on `port` (0: any), killed when the scope ends; its port and how to kill it. */
const backendProcess = (port = 0) =>
  Effect.acquireRelease(
    Effect.callback<{ readonly port: number; readonly kill: () => void }>((resume) => {
      const child = fork(fileURLToPath(new URL("../fixtures/echo-backend.mjs", import.meta.url)), [String(port)], {
        stdio: "ignore"
      })
      child.once("message", (bound) => resume(Effect.succeed({ port: Number(bound), kill: () => child.kill("SIGKILL") })))
    }),
    ({ kill }) => Effect.sync(kill)
  )

/** 32 clients echoing 43 KiB messages back to back through the proxy; resolves once each has had two echoes. */
const echoing = (port: number) =>
  Effect.acquireRelease(
    Effect.sync(() => {
      const echoes: Array<number> = []
      const clients = Array.from({ length: 32 }, (_, i) => {
        const client = Net.connect({ port, host: "127.0.0.1", allowHalfOpen: true })
        const message = Buffer.alloc(44095, i)
        let got = 0
        echoes[i] = 0
        client.on("error", () => {})
        client.on("data", (chunk: Buffer) => {
          got += chunk.length
          if (got < message.length) return
          got = 0
          echoes[i]!++
          client.write(message)
        })
        client.on("end", () => client.end())
        client.write(message)
        return client
      })
      return { clients, echoing: () => echoes.every((n) => n >= 2) }
    }),
    ({ clients }) => Effect.sync(() => clients.forEach((client) => client.destroy()))
  )

describe("faults", () => {
  it.live("a backend process killed mid-echo, three times: every connection ends each time, none is left open", () =>
    Effect.gen(function*() {
      let backend = yield* backendProcess()
      const cli = yield* spawnCli(["--laddr", "127.0.0.1:0", "--metrics-addr", "127.0.0.1:0", `127.0.0.1:${backend.port}`])
      const port = yield* listeningPort(cli)
      const admin = yield* eventually(
        "the admin endpoint",
        Effect.sync(() => Option.map(Option.fromNullishOr(/admin endpoint on http:\/\/127\.0\.0\.1:(\d+)/.exec(cli.stderr())), (m) => Number(m[1])))
      )
      const active = Effect.promise(() =>
        fetch(`http://127.0.0.1:${admin}/metrics`).then((r) => r.text()).then((text) =>
          Number(/^tcp_proxy_connections_active (\d+)/m.exec(text)?.[1])
        )
      )
      for (let round = 0; round < 3; round++) {
        // The backend dies with bytes in flight both ways: the proxy sees its FIN and a reset, in either order.
        yield* Effect.scoped(Effect.gen(function*() {
          const load = yield* echoing(port)
          yield* until("two echoes on every connection", load.echoing)
          backend.kill()
          yield* eventually(
            `every connection to end (round ${round})`,
            Effect.map(active, (n) => (n === 0 ? Option.some(n) : Option.none()))
          )
        }))
        // Back on the same port before a health check could count it down (one every 5 s, three to fail).
        backend = yield* backendProcess(backend.port)
      }
    }), { timeout: 60_000 })


  it.live("a backend reset mid-stream closes only its client and counts an io error", () => {
    const lines: Array<LogLine> = []
    return Effect.gen(function*() {
      const backend = yield* modalBackend()
      const proxy = yield* startProxy(testConfig([backend.address]))
      const good = yield* connect(proxy.port)
      yield* roundTrip(good, echoPayload(64 * 1024))

      const bad = yield* connect(proxy.port)
      const badPort = bad.localPort!
      const badSeen = track(bad)
      bad.write("RESET please")
      yield* until("the partial response", () => badSeen.received().toString() === "partial response")
      // While the doomed connection is mid-response, the other one still works.
      yield* roundTrip(good, echoPayload(64 * 1024))
      assert.strictEqual(backend.resetting.length, 1)
      backend.resetting[0]!.resetAndDestroy()

      const result = yield* badSeen.closed
      assert.strictEqual(result.data.toString(), "partial response", "bytes before the reset are relayed")
      assert.isTrue(bad.closed)
      assert.strictEqual((yield* lineOf(lines, badPort)).annotations.end, "backend_reset")

      // After the reset, the other connection is untouched.
      yield* roundTrip(good, echoPayload(256 * 1024))
      const goodPort = good.localPort!
      const goodEnd = yield* finishClient(good)
      assert.isUndefined(goodEnd.error)
      assert.strictEqual(goodEnd.data.length, 0)
      const goodLine = yield* lineOf(lines, goodPort)
      assert.strictEqual(goodLine.annotations.end, "done")
      assert.strictEqual(goodLine.annotations.bytes_in, 3 * 4 + 64 * 1024 * 2 + 256 * 1024)

      const snapshot = yield* proxy.metrics.snapshot
      assert.strictEqual(valueIn(snapshot, `tcp_proxy_errors_total{kind="io"}`), 1, snapshot)
      yield* metricReaches(proxy, "tcp_proxy_connections_active", 0)
    }).pipe(Effect.provide(captureLogs(lines)))
  })

  it.live("a client reset while its backend is sending closes that backend connection only", () => {
    const lines: Array<LogLine> = []
    return Effect.gen(function*() {
      const backend = yield* modalBackend()
      const proxy = yield* startProxy(testConfig([backend.address]))
      const good = yield* connect(proxy.port)
      yield* roundTrip(good, echoPayload(64 * 1024))

      const bad = yield* connect(proxy.port)
      const badPort = bad.localPort!
      bad.write("STREAM")
      // The backend is sending: the client gets a good part of it, then resets.
      yield* readAtLeast(bad, 1 * MiB)
      assert.strictEqual(backend.streaming.length, 1)
      const streamer = backend.streaming[0]!
      yield* roundTrip(good, echoPayload(64 * 1024))
      assert.isFalse(streamer.closed)
      bad.resetAndDestroy()

      yield* until("the streaming backend socket to close", () => streamer.closed)
      assert.strictEqual((yield* lineOf(lines, badPort)).annotations.end, "client_reset")

      yield* roundTrip(good, echoPayload(256 * 1024))
      const goodPort = good.localPort!
      const goodEnd = yield* finishClient(good)
      assert.isUndefined(goodEnd.error)
      assert.strictEqual((yield* lineOf(lines, goodPort)).annotations.end, "done")

      const snapshot = yield* proxy.metrics.snapshot
      assert.strictEqual(valueIn(snapshot, `tcp_proxy_errors_total{kind="io"}`), 1, snapshot)
      yield* metricReaches(proxy, "tcp_proxy_connections_active", 0)
    }).pipe(Effect.provide(captureLogs(lines)))
  })

  it.live("a backend that never answers holds only its own client; its FIN and close pass through", () => {
    const lines: Array<LogLine> = []
    return Effect.gen(function*() {
      const backend = yield* modalBackend()
      const proxy = yield* startProxy(testConfig([backend.address]))
      const mute = yield* connect(proxy.port)
      const mutePort = mute.localPort!
      const muteSeen = track(mute)
      mute.write("SILENT hello?")
      yield* until("the silent backend to get the request", () => backend.silent.length === 1)
      const silentSocket = backend.silent[0]!
      let backendGotFin = false
      silentSocket.once("end", () => (backendGotFin = true))

      // Other clients are served meanwhile, start to end.
      for (let i = 0; i < 5; i++) {
        const reply = yield* exchange(proxy.port, echoPayload(1024 + i))
        assert.strictEqual(reply.data.length, 4 + 1024 + i)
        assert.isUndefined(reply.error)
      }
      assert.strictEqual(muteSeen.received().length, 0, "the client of a silent backend gets nothing")
      assert.isFalse(mute.closed)
      assert.isFalse(silentSocket.closed)
      yield* metricReaches(proxy, "tcp_proxy_connections_active", 1)

      // The client gives up: FIN, then close.
      mute.end()
      mute.destroy()
      yield* until("the backend to get the FIN", () => backendGotFin)
      yield* until("the backend socket to close", () => silentSocket.closed)
      yield* lineOf(lines, mutePort)
      yield* metricReaches(proxy, "tcp_proxy_connections_active", 0)
      const active = yield* proxy.registry.all
      assert.strictEqual(active[0]!.activeConnections, 0)
    }).pipe(Effect.provide(captureLogs(lines)))
  })

  it.live("--idle-timeout closes both sides of a connection to a silent backend", () => {
    const lines: Array<LogLine> = []
    return Effect.gen(function*() {
      const backend = yield* modalBackend()
      const proxy = yield* startProxy(
        testConfig([backend.address], { idleTimeout: Option.some(Duration.millis(300)) })
      )
      const mute = yield* connect(proxy.port)
      const mutePort = mute.localPort!
      // The client has half-open sockets: it answers the proxy's FIN with its own.
      mute.once("end", () => mute.end())
      const muteSeen = track(mute)
      mute.write("SILENT hello?")
      yield* until("the silent backend to get the request", () => backend.silent.length === 1)
      const silentSocket = backend.silent[0]!

      const result = yield* muteSeen.closed
      assert.strictEqual(result.data.length, 0)
      yield* until("the backend socket to close", () => silentSocket.closed)
      const line = yield* lineOf(lines, mutePort)
      assert.strictEqual(line.annotations.end, "idle_timeout")
      assert.isAtLeast(Number(line.annotations.duration_ms), 290)
      assert.strictEqual(line.annotations.bytes_in, "SILENT hello?".length)
      yield* metricReaches(proxy, "tcp_proxy_connections_active", 0)

      // A busy connection is not cut while it carries bytes.
      const busy = yield* connect(proxy.port)
      for (let i = 0; i < 3; i++) yield* roundTrip(busy, echoPayload(1024))
      const end = yield* finishClient(busy)
      assert.isUndefined(end.error)
    }).pipe(Effect.provide(captureLogs(lines)))
  })

  it.live("1,000 clients that vanish or send garbage leave no trace", () =>
    Effect.gen(function*() {
      const backend = yield* echoServer()
      const proxy = yield* startProxy(testConfig([backend.address]))
      // Warm up so lazily opened handles do not count.
      assert.strictEqual((yield* exchange(proxy.port, "warm-up")).data.toString(), "warm-up")
      yield* until("warm-up sockets to close", () => backend.accepted.every((socket) => socket.closed))
      const baseline = openFds()

      let connected = 0
      const vanish = (i: number) =>
        Effect.callback<void>((resume) => {
          const socket = Net.connect({ host: "127.0.0.1", port: proxy.port })
          socket.on("error", () => {})
          socket.once("close", () => resume(Effect.void))
          socket.once("connect", () => {
            connected++
            switch (i % 4) {
              case 0:
                return socket.destroy()
              case 1:
                return socket.resetAndDestroy()
              case 2:
                return socket.write(randomBytes(1 + (i * 37) % 4096), () => socket.destroy())
              default:
                return socket.write(randomBytes(1 + (i * 53) % 4096), () => socket.resetAndDestroy())
            }
          })
        })
      yield* Effect.forEach(Array.from({ length: 1000 }, (_, i) => i), vanish, { concurrency: 100, discard: true })
      assert.strictEqual(connected, 1000)

      yield* metricReaches(proxy, "tcp_proxy_connections_active", 0, 500)
      const snapshot = yield* proxy.metrics.snapshot
      assert.strictEqual(valueIn(snapshot, "tcp_proxy_connections_total"), 1001, snapshot)
      yield* until("every backend socket to close", () => backend.accepted.every((socket) => socket.closed), 500)
      yield* until(`fds to return to the baseline of ${baseline}`, () => openFds() <= baseline, 500)
      const active = yield* proxy.registry.all
      assert.strictEqual(active[0]!.activeConnections, 0)

      const payload = randomBytes(64 * 1024)
      const reply = yield* exchange(proxy.port, payload)
      assert.strictEqual(sha256(reply.data), sha256(payload))
      assert.isUndefined(reply.error)
    }), { timeout: 30_000 })

  it.live("the CLI keeps memory bounded for a client that never reads a 256 MiB stream", () =>
    Effect.gen(function*() {
      const total = 256 * MiB
      let written = 0
      const flooded: Array<Net.Socket> = []
      // FLOOD: write 256 MiB as fast as the socket takes it; anything else: echo.
      const backend = yield* server((socket) => {
        socket.on("end", () => socket.end())
        socket.once("data", (first: Buffer) => {
          if (first.toString("latin1").startsWith("FLOOD")) {
            flooded.push(socket)
            const chunk = Buffer.alloc(64 * 1024, 1)
            const pump = () => {
              while (written < total && !socket.destroyed) {
                written += chunk.length
                if (!socket.write(chunk)) return
              }
            }
            socket.on("drain", pump)
            pump()
          } else {
            socket.write(first)
            socket.on("data", (chunk: Buffer) => socket.write(chunk))
          }
        })
      })
      const cli = yield* spawnCli(["--laddr", "127.0.0.1:0", backend.address])
      const port = yield* listeningPort(cli)
      const pid = cli.child.pid!

      const client = yield* connect(port)
      client.pause()
      client.write("FLOOD")
      yield* until("the flood to start", () => flooded.length === 1 && written > 0)
      const flooder = flooded[0]!
      // Blocked: the backend waits for 'drain' and nothing more is taken for a while.
      let last = -1
      let stable = 0
      yield* until("the backend to be blocked", () => {
        stable = flooder.writableNeedDrain && written === last ? stable + 1 : 0
        last = written
        return stable >= 10
      }, 500)

      const status = readFileSync(`/proc/${pid}/status`, "utf8")
      const rssKiB = Number(/VmRSS:\s+(\d+)\s+kB/.exec(status)?.[1])
      assert.isAbove(rssKiB, 0, status)
      assert.isBelow(rssKiB * 1024, 200 * MiB, `proxy RSS ${rssKiB} KiB`)
      assert.isBelow(written, 64 * MiB, "only socket buffers sit between the flooder and the idle reader")

      client.destroy()
      yield* until("the flooding backend socket to close", () => flooder.closed)
      assert.strictEqual(cli.child.exitCode, null)
      assert.strictEqual(cli.child.signalCode, null)
      const reply = yield* exchange(port, "ECHO after the flood")
      assert.strictEqual(reply.data.toString(), "ECHO after the flood")
      assert.strictEqual(cli.child.exitCode, null)
    }), { timeout: 30_000 })

  it.live("--max-connections closes clients past the limit at once and serves again below it", () => {
    const lines: Array<LogLine> = []
    return Effect.gen(function*() {
      const backend = yield* echoServer()
      const proxy = yield* startProxy(testConfig([backend.address], { maxConnections: 2 }))
      const first = yield* connect(proxy.port)
      const second = yield* connect(proxy.port)
      yield* roundTrip(first, randomBytes(4096))
      yield* roundTrip(second, randomBytes(4096))

      const third = yield* connect(proxy.port)
      const thirdPort = third.localPort!
      // It may be closed before or after this write lands; either way nothing comes back.
      third.once("end", () => third.end())
      const thirdSeen = track(third)
      third.write("let me in")
      const result = yield* thirdSeen.closed
      assert.strictEqual(result.data.length, 0)
      const line = yield* lineOf(lines, thirdPort)
      assert.strictEqual(line.annotations.end, "rejected")
      assert.isUndefined(line.annotations.backend)
      const snapshot = yield* proxy.metrics.snapshot
      assert.strictEqual(valueIn(snapshot, `tcp_proxy_connections_rejected_total{reason="max_connections"}`), 1, snapshot)
      assert.strictEqual(valueIn(snapshot, `tcp_proxy_backend_connections_total{backend="${backend.address}"}`), 2)

      // The held connections were not disturbed.
      yield* roundTrip(first, randomBytes(4096))
      yield* roundTrip(second, randomBytes(4096))

      // One leaves: a new client is served.
      assert.isUndefined((yield* finishClient(first)).error)
      yield* metricReaches(proxy, "tcp_proxy_connections_active", 1)
      const reply = yield* exchange(proxy.port, "served again")
      assert.strictEqual(reply.data.toString(), "served again")
      assert.strictEqual(valueIn(yield* proxy.metrics.snapshot, `tcp_proxy_connections_rejected_total{reason="max_connections"}`), 1)
      yield* roundTrip(second, randomBytes(4096))
    }).pipe(Effect.provide(captureLogs(lines)))
  })
})
