import { createHash, randomBytes } from "node:crypto"
import type * as Net from "node:net"
import { assert, describe, it } from "@effect/vitest"
import { Deferred, Effect, Layer } from "effect"
import * as DialerLive from "../../src/layers/DialerLive.ts"
import { reset } from "../../src/net/Relay.ts"
import { Dialer } from "../../src/services/Dialer.ts"
import {
  captureLogs,
  closedLines,
  connect,
  echoServer,
  exchange,
  hashInBursts,
  type LogLine,
  openFds,
  readAll,
  readAtLeast,
  relayed,
  server,
  sha256,
  startProxy,
  testConfig,
  until
} from "./helpers.ts"

/** A dialer that holds every dial until `release` completes; `dialling` completes when the first dial starts. */
const heldDialer = (release: Deferred.Deferred<void>, dialling?: Deferred.Deferred<void>) =>
  Layer.effect(
    Dialer,
    Effect.gen(function*() {
      const live = yield* Dialer
      return Dialer.of({
        dial: (target, timeout, reads) =>
          Effect.andThen(
            dialling === undefined ? Effect.void : Deferred.succeed(dialling, undefined),
            Effect.andThen(Deferred.await(release), live.dial(target, timeout, reads))
          )
      })
    })
  ).pipe(Layer.provide(DialerLive.layer))

describe("relay", () => {
  it.live("echoes bytes unchanged and logs one line per connection, with both ends as the sockets saw them", () => {
    const lines: Array<LogLine> = []
    return Effect.gen(function*() {
      // An echo server that notes where the proxy's connection came from (health checks connect too, and send nothing).
      let relayedFrom: number | undefined
      const backend = yield* server((socket) => {
        socket.once("data", () => relayedFrom = socket.remotePort)
        socket.on("data", (chunk) => socket.write(chunk))
        socket.on("end", () => socket.end())
      })
      const proxy = yield* startProxy(testConfig([backend.address]))
      const client = yield* connect(proxy.port)
      const clientPort = client.localPort
      const received = readAll(client)
      client.end("hello, proxy")
      const reply = yield* received
      assert.strictEqual(reply.data.toString(), "hello, proxy")
      assert.isUndefined(reply.error)
      yield* until("the connection log line", () => closedLines(lines).length === 1)
      const [line] = closedLines(lines)
      assert.strictEqual(line!.annotations.backend, backend.address)
      assert.strictEqual(line!.annotations.client, `127.0.0.1:${clientPort}`)
      assert.strictEqual(line!.annotations.backend_local, `127.0.0.1:${relayedFrom}`)
      assert.strictEqual(line!.annotations.bytes_in, 12)
      assert.strictEqual(line!.annotations.bytes_out, 12)
      assert.strictEqual(line!.annotations.end, "done")
      assert.isNumber(line!.annotations.duration_ms)
    }).pipe(Effect.provide(captureLogs(lines)))
  })

  it.live("carries 32 MiB each way intact", () =>
    Effect.gen(function*() {
      const backend = yield* echoServer()
      const proxy = yield* startProxy(testConfig([backend.address]))
      const payload = randomBytes(32 * 1024 * 1024)
      const reply = yield* exchange(proxy.port, payload)
      assert.strictEqual(reply.data.length, payload.length)
      assert.strictEqual(sha256(reply.data), sha256(payload))
      const snapshot = yield* proxy.metrics.snapshot
      assert.include(snapshot, `tcp_proxy_frontend_bytes_received_total: ${payload.length}`)
      assert.include(snapshot, `tcp_proxy_frontend_bytes_sent_total: ${payload.length}`)
      assert.include(snapshot, `tcp_proxy_backend_bytes_sent_total{backend="${backend.address}"}: ${payload.length}`)
    }), { timeout: 60_000 })

  it.live("client FIN reaches the backend while the backend keeps sending", () =>
    Effect.gen(function*() {
      // The backend answers only once the client has half-closed, then sends more and ends.
      const backend = yield* server((socket) => {
        const chunks: Array<Buffer> = []
        socket.on("data", (chunk: Buffer) => chunks.push(chunk))
        socket.on("end", () => {
          socket.write(`got ${Buffer.concat(chunks).toString()};`)
          setImmediate(() => socket.end("after your FIN"))
        })
      })
      const proxy = yield* startProxy(testConfig([backend.address]))
      const reply = yield* exchange(proxy.port, "request")
      assert.strictEqual(reply.data.toString(), "got request;after your FIN")
    }))

  it.live("backend FIN reaches the client while the client keeps sending", () =>
    Effect.gen(function*() {
      const late = yield* Deferred.make<string>()
      // The backend greets and half-closes at once, then reads what the client sends after.
      const backend = yield* server((socket) => {
        socket.end("bye")
        const chunks: Array<Buffer> = []
        socket.on("data", (chunk: Buffer) => chunks.push(chunk))
        socket.on("end", () => Deferred.doneUnsafe(late, Effect.succeed(Buffer.concat(chunks).toString())))
      })
      const proxy = yield* startProxy(testConfig([backend.address]))
      const client = yield* connect(proxy.port)
      const received = readAll(client)
      client.once("end", () => client.end("still talking"))
      assert.strictEqual(yield* Deferred.await(late), "still talking")
      const reply = yield* received
      assert.strictEqual(reply.data.toString(), "bye")
      assert.isUndefined(reply.error)
    }))

  it.live("backend FIN first, client still sending: 100 connections at once, every byte both ways", () =>
    Effect.gen(function*() {
      const received: Array<string> = []
      // The backend greets and half-closes at once, then hashes everything the client sends until its FIN.
      const backend = yield* server((socket) => {
        socket.end("bye")
        const hash = createHash("sha256")
        socket.on("data", (chunk: Buffer) => hash.update(chunk))
        socket.on("end", () => received.push(hash.digest("hex")))
      })
      const proxy = yield* startProxy(testConfig([backend.address]))
      const payload = randomBytes(256 * 1024)
      const one = (index: number) => Effect.scoped(Effect.gen(function*() {
        const client = yield* connect(proxy.port)
        const reply = readAll(client)
        // Half the clients write before the backend's FIN reaches them, half after.
        if (index % 2 === 0) client.end(payload)
        else client.once("end", () => client.end(payload))
        return yield* reply
      }))
      const replies = yield* Effect.forEach(Array.from({ length: 100 }, (_, index) => index), one, { concurrency: 100 })
      for (const reply of replies) {
        assert.strictEqual(reply.data.toString(), "bye")
        assert.isUndefined(reply.error)
      }
      yield* until("the backend to see every client's FIN", () => received.length === 100)
      assert.deepStrictEqual(new Set(received), new Set([sha256(payload)]))
    }), { timeout: 30_000 })

  it.live("a backend reset resets the client and counts an io error", () => {
    const lines: Array<LogLine> = []
    return Effect.gen(function*() {
      const backend = yield* server((socket) => socket.once("data", () => socket.resetAndDestroy()))
      const proxy = yield* startProxy(testConfig([backend.address]))
      const client = yield* connect(proxy.port)
      const received = readAll(client)
      client.write("boom")
      const result = yield* received
      assert.isDefined(result.error)
      yield* until("the connection log line", () => closedLines(lines).length === 1)
      assert.strictEqual(closedLines(lines)[0]!.annotations.end, "backend_reset")
      assert.include(yield* proxy.metrics.snapshot, `tcp_proxy_errors_total{kind="io"}: 1`)
    }).pipe(Effect.provide(captureLogs(lines)))
  })

  it.live("a client reset closes the backend", () => {
    const lines: Array<LogLine> = []
    return Effect.gen(function*() {
      const backendClosed = yield* Deferred.make<void>()
      const backend = yield* server((socket) => socket.once("close", () => Deferred.doneUnsafe(backendClosed, Effect.void)))
      const proxy = yield* startProxy(testConfig([backend.address]))
      const client = yield* connect(proxy.port)
      client.write("x")
      yield* relayed(backend)
      client.resetAndDestroy()
      yield* Deferred.await(backendClosed)
      yield* until("the connection log line", () => closedLines(lines).length === 1)
      assert.strictEqual(closedLines(lines)[0]!.annotations.end, "client_reset")
    }).pipe(Effect.provide(captureLogs(lines)))
  })

  it.live("every byte intact while writes wait: 8 connections, 16 MiB each way, both ends reading in bursts", () =>
    Effect.gen(function*() {
      // The proxy reuses the chunks it reads into once their writes are done: a chunk reused while a write still
      // waited would corrupt a stream. Every client first lets its backend's writes pile up (16 MiB is more than the
      // socket buffers between them hold), then both ends read in bursts, so that writes wait on both sides again
      // and again while the other connections keep reading.
      const payload = randomBytes(16 * 1024 * 1024)
      const atBackends: Array<string> = []
      const backend = yield* server((socket) => {
        hashInBursts(socket, (digest) => atBackends.push(digest))
        socket.end(payload)
      })
      const proxy = yield* startProxy(testConfig([backend.address]))
      const clients = yield* Effect.forEach(Array.from({ length: 8 }), () => connect(proxy.port))
      for (const client of clients) {
        client.pause()
        client.end(payload)
      }
      // Health checks connect too, and send nothing.
      const relayedTo = () => backend.accepted.filter((socket) => socket.bytesRead > 0)
      yield* until("every backend's writes to wait", () =>
        relayedTo().length === 8 && relayedTo().every((socket) => socket.writableLength > 0))
      const atClients = yield* Effect.forEach(clients, (client) =>
        Effect.callback<string>((resume) => {
          hashInBursts(client, (digest) => resume(Effect.succeed(digest)))
          client.resume()
        }), { concurrency: "unbounded" })
      assert.deepStrictEqual(new Set(atClients), new Set([sha256(payload)]))
      yield* until("every backend to have read its client's bytes", () => atBackends.length === 8)
      assert.deepStrictEqual(new Set(atBackends), new Set([sha256(payload)]))
    }), { timeout: 30_000 })

  it.live("a slow reader slows its writer: proxy buffers stay bounded", () =>
    Effect.gen(function*() {
      // The backend writes as fast as the proxy accepts; the client does not read.
      let written = 0
      const backend = yield* server((socket) => {
        const chunk = Buffer.alloc(64 * 1024)
        const pump = () => {
          while (written < 256 * 1024 * 1024 && socket.write(chunk)) written += chunk.length
        }
        socket.on("drain", pump)
        pump()
      })
      const proxy = yield* startProxy(testConfig([backend.address]))
      const client = yield* connect(proxy.port)
      client.pause()
      yield* until("the backend to be blocked", () => written > 0 && backend.accepted[0]!.writableNeedDrain)
      const blockedAt = written
      // Reading a little lets only a little more through.
      yield* readAtLeast(client, 1024 * 1024)
      assert.isBelow(written, 256 * 1024 * 1024)
      assert.isBelow(blockedAt, 64 * 1024 * 1024, "socket buffers, not the whole stream, sit between")
    }))

  it.live("no socket of a connection stays open after it ends", () =>
    Effect.gen(function*() {
      const backend = yield* echoServer()
      const proxy = yield* startProxy(testConfig([backend.address]))
      // Warm up once so lazily opened handles do not count.
      yield* exchange(proxy.port, "warm-up")
      yield* until("warm-up sockets to close", () => backend.accepted.every((socket) => socket.closed))
      const baseline = openFds()
      for (let i = 0; i < 20; i++) yield* exchange(proxy.port, `round ${i}`)
      // A client that resets, and one that half-closes and leaves.
      const resetter = yield* connect(proxy.port)
      resetter.resetAndDestroy()
      const halfCloser = yield* connect(proxy.port)
      const echoed = readAll(halfCloser)
      halfCloser.end("bye")
      assert.strictEqual((yield* echoed).data.toString(), "bye")
      yield* until("every backend socket to close", () => backend.accepted.every((socket) => socket.closed))
      yield* until("fds to return to the baseline", () => openFds() <= baseline)
    }))

  it.live("a client that sends 8 MiB while its backend is being dialled: what the proxy held and the rest arrive intact", () =>
    Effect.gen(function*() {
      const backend = yield* echoServer()
      const release = yield* Deferred.make<void>()
      const proxy = yield* startProxy(testConfig([backend.address]), { dialer: heldDialer(release) })
      const client: Net.Socket = yield* connect(proxy.port)
      const payload = randomBytes(8 * 1024 * 1024)
      const received = readAll(client)
      client.end(payload)
      // The proxy holds a few KiB and a chunk at most and stops reading; the rest waits in the kernel and the client.
      yield* until("the client's writes to wait", () => client.writableLength > 0)
      yield* Deferred.succeed(release, undefined)
      const reply = yield* received
      assert.strictEqual(reply.data.length, payload.length)
      assert.strictEqual(sha256(reply.data), sha256(payload))
    }), { timeout: 30_000 })

  it.live("a client that sends FIN while its backend is being dialled is served and cleaned up", () =>
    Effect.gen(function*() {
      const backend = yield* echoServer()
      const release = yield* Deferred.make<void>()
      const dialling = yield* Deferred.make<void>()
      const proxy = yield* startProxy(testConfig([backend.address]), { dialer: heldDialer(release, dialling) })
      const client: Net.Socket = yield* connect(proxy.port)
      const received = readAll(client)
      client.end("early words")
      yield* Deferred.await(dialling)
      yield* Deferred.succeed(release, undefined)
      const reply = yield* received
      assert.strictEqual(reply.data.toString(), "early words")
      yield* until("the backend socket to close", () => backend.accepted.every((socket) => socket.closed))
      const active = yield* proxy.registry.all
      assert.strictEqual(active[0]!.activeConnections, 0)
    }))
})

describe("a dialer of an embedding app", () => {
  it.live("that ignores the reads it is given still relays both ways", () =>
    Effect.gen(function*() {
      const backend = yield* echoServer()
      const plainDialer = Layer.effect(
        Dialer,
        Effect.map(Dialer, (live) => Dialer.of({ dial: (target, timeout) => live.dial(target, timeout) }))
      ).pipe(Layer.provide(DialerLive.layer))
      const proxy = yield* startProxy(testConfig([backend.address]), { dialer: plainDialer })
      const payload = randomBytes(1024 * 1024)
      const reply = yield* exchange(proxy.port, payload)
      assert.strictEqual(sha256(reply.data), sha256(payload))
    }))
})

describe("reset", () => {
  it.live("a socket whose FIN is on its way is closed all the same (Node cannot reset it then)", () =>
    Effect.gen(function*() {
      const peer = yield* server((socket) => socket.pause())
      for (const pending of ["", "x"]) {
        const socket = yield* connect(peer.port)
        const errors: Array<string> = []
        socket.on("error", (error: NodeJS.ErrnoException) => errors.push(error.code ?? "error"))
        const closed = Effect.callback<void>((resume) => {
          socket.once("close", () => resume(Effect.void))
        })
        if (pending !== "") socket.write(pending)
        socket.end()
        reset(socket)
        yield* closed.pipe(Effect.timeout("5 seconds"))
        assert.deepStrictEqual(errors, [])
      }
    }))

  it.live("an open socket is reset: its peer sees ECONNRESET", () =>
    Effect.gen(function*() {
      const seen = yield* Deferred.make<string>()
      const peer = yield* server((socket) => {
        socket.on("error", (error: NodeJS.ErrnoException) => Deferred.doneUnsafe(seen, Effect.succeed(error.code ?? "error")))
        socket.on("end", () => Deferred.doneUnsafe(seen, Effect.succeed("end")))
      })
      const socket = yield* connect(peer.port)
      yield* until("the peer to accept", () => peer.accepted.length === 1)
      reset(socket)
      assert.strictEqual(yield* Deferred.await(seen), "ECONNRESET")
    }))
})
