import { randomBytes, X509Certificate } from "node:crypto"
import { readFileSync } from "node:fs"
import type * as Net from "node:net"
import * as Tls from "node:tls"
import { fileURLToPath } from "node:url"
import { assert, describe, it } from "@effect/vitest"
import { Duration, Effect, Option, Result } from "effect"
import * as Config from "../../src/domain/Config.ts"
import * as TcpProxy from "../../src/TcpProxy.ts"
import {
  captureLogs,
  closedLines,
  connect,
  echoServer,
  eventually,
  type LogLine,
  flood,
  hashInBursts,
  readAll,
  resetSeen,
  server,
  sha256,
  startProxy,
  testConfig,
  until,
  untilBlocked
} from "./helpers.ts"

const fixture = (name: string) => fileURLToPath(new URL(`../fixtures/tls/${name}`, import.meta.url))
const files = (name: string): Config.CertificateFiles => ({ cert: fixture(`${name}.pem`), key: fixture(`${name}.key`) })
const ca = readFileSync(fixture("ca.pem"))
const backend = (text: string) => Result.getOrThrow(Config.backend(text))

/** A TLS echo backend with the given certificate, answering with `tag` first. */
const tlsEchoServer = (name: string, tag: string) =>
  Effect.acquireRelease(
    Effect.callback<{ readonly server: Tls.Server; readonly address: string }>((resume) => {
      const server = Tls.createServer({ cert: readFileSync(fixture(`${name}.pem`)), key: readFileSync(fixture(`${name}.key`)) }, (socket) => {
        socket.on("error", () => {})
        socket.on("data", (chunk) => socket.write(`${tag}${chunk}`))
        socket.on("end", () => socket.end())
      })
      server.listen(0, "127.0.0.1", () => {
        const bound = server.address()
        const port = bound !== null && typeof bound === "object" ? bound.port : 0
        resume(Effect.succeed({ server, address: `127.0.0.1:${port}` }))
      })
    }),
    ({ server }) =>
      Effect.callback<void>((resume) => {
        server.close(() => resume(Effect.void))
      })
  )

/** What a TLS client saw (trusting the test CA): the server certificate's fingerprint and CN, and the reply to `message`. */
const tlsExchange = (port: number, servername: string | undefined, message: string) =>
  Effect.callback<{ readonly reply: string; readonly cn: string; readonly fingerprint: string }, Error>((resume) => {
    const socket = Tls.connect({
      host: "127.0.0.1",
      port,
      ca,
      // The CN is asserted by the tests; a name the default certificate does not cover must still connect.
      checkServerIdentity: () => undefined,
      ...(servername === undefined ? {} : { servername })
    })
    let reply = ""
    socket.on("error", (error) => resume(Effect.fail(error)))
    socket.on("secureConnect", () => socket.end(message))
    socket.on("data", (chunk: Buffer) => (reply += chunk.toString()))
    socket.on("end", () => {
      const cert = socket.getPeerCertificate()
      resume(Effect.succeed({ reply, cn: String(cert.subject?.CN), fingerprint: cert.fingerprint256 }))
    })
    return Effect.sync(() => socket.destroy())
  })

/** Waits until the proxy's snapshot has `line`. */
const snapshotHas = (proxy: { readonly metrics: { readonly snapshot: Effect.Effect<string> } }, line: string) =>
  eventually(line, Effect.map(proxy.metrics.snapshot, (snapshot) => snapshot.includes(line) ? Option.some(true) : Option.none()))

describe("TLS termination", () => {
  it.live("a TLS client reaches a plaintext backend through the proxy", () =>
    Effect.gen(function*() {
      const plain = yield* echoServer("plain:")
      const proxy = yield* startProxy(testConfig([plain.address], { tls: Option.some(files("default")) }))
      const seen = yield* tlsExchange(proxy.port, "default.example.com", "hello")
      assert.strictEqual(seen.reply, "plain:hello")
      assert.strictEqual(seen.cn, "default")
    }))

  it.live("a TLS client and a plaintext backend exchange 16 MiB each way intact under backpressure", () =>
    Effect.gen(function*() {
      // The backend's bytes go into the TLS session through pooled chunks, given back as each write ends (the
      // session's writes take callbacks), and the session stops the backend's reads while it waits. The client
      // first lets the backend's writes pile up (more than the socket buffers between them hold), then both ends
      // read in bursts, so that the relay waits and resumes again and again in both directions.
      const payload = randomBytes(16 * 1024 * 1024)
      let atBackend: string | undefined
      const plain = yield* server((socket) => {
        hashInBursts(socket, (digest) => (atBackend = digest))
        socket.end(payload)
      })
      const proxy = yield* startProxy(testConfig([plain.address], { tls: Option.some(files("default")) }))
      const socket = Tls.connect({ host: "127.0.0.1", port: proxy.port, ca, servername: "default.example.com" })
      socket.on("error", () => {})
      socket.pause()
      socket.on("secureConnect", () => socket.end(payload))
      // Health checks connect too, and send nothing.
      yield* until("the backend's writes to wait", () =>
        plain.accepted.some((accepted) => accepted.bytesRead > 0 && accepted.writableLength > 0))
      const atClient = yield* Effect.callback<string, Error>((resume) => {
        socket.on("error", (error) => resume(Effect.fail(error)))
        hashInBursts(socket, (digest) => resume(Effect.succeed(digest)))
        socket.resume()
        return Effect.sync(() => socket.destroy())
      })
      assert.strictEqual(atClient, sha256(payload))
      yield* until("the backend to read the client's bytes", () => atBackend !== undefined)
      assert.strictEqual(atBackend, sha256(payload))
    }), { timeout: 30_000 })

  it.live("--backend-tls re-encrypts toward a TLS backend, verified against --backend-ca", () =>
    Effect.gen(function*() {
      const secure = yield* tlsEchoServer("backend", "secure:")
      const proxy = yield* startProxy(testConfig([secure.address], {
        backendTls: true,
        backendCa: Option.some(fixture("ca.pem"))
      }))
      const client = yield* connect(proxy.port)
      const received = readAll(client)
      client.end("over tls")
      assert.strictEqual((yield* received).data.toString(), "secure:over tls")
    }))

  it.live("a TLS backend whose certificate fails verification turns UNHEALTHY, its warn line naming the certificate error", () =>
    Effect.gen(function*() {
      const lines: Array<LogLine> = []
      // The certificate is the CA's, but for web.example.com: not for the address dialled.
      const wrongName = yield* tlsEchoServer("web", "web:")
      const proxy = yield* startProxy(
        testConfig([wrongName.address], {
          backendTls: true,
          backendCa: Option.some(fixture("ca.pem")),
          health: { interval: Duration.millis(20), timeout: Duration.millis(500), healthyThreshold: 1, unhealthyThreshold: 2 }
        })
      ).pipe(Effect.provide(captureLogs(lines)))
      const down = yield* eventually(
        "the backend to turn UNHEALTHY",
        Effect.sync(() => Option.fromUndefinedOr(lines.find((line) => line.message === `backend ${wrongName.address} now UNHEALTHY`)))
      )
      assert.strictEqual(down.level, "WARN")
      assert.match(String(down.annotations.reason), /127\.0\.0\.1 is not in the cert's list.*ERR_TLS_CERT_ALTNAME_INVALID/)
      assert.isTrue((yield* proxy.registry.all).every((status) => status.state === "UNHEALTHY"))
    }))

  it.live("a failed handshake closes only that connection, is counted, and ends as protocol_error", () => {
    const lines: Array<LogLine> = []
    return Effect.gen(function*() {
      const plain = yield* echoServer("plain:")
      const proxy = yield* startProxy(testConfig([plain.address], { tls: Option.some(files("default")) }))
      const failed = yield* Effect.result(Effect.callback<void, Error>((resume) => {
        const socket = Tls.connect({ host: "127.0.0.1", port: proxy.port, ca, servername: "default.example.com", maxVersion: "TLSv1.1", minVersion: "TLSv1" })
        socket.on("error", (error) => resume(Effect.fail(error)))
        socket.on("secureConnect", () => resume(Effect.void))
      }))
      assert.isTrue(Result.isFailure(failed))
      assert.strictEqual((yield* tlsExchange(proxy.port, "default.example.com", "still")).reply, "plain:still")
      yield* snapshotHas(proxy, `tcp_proxy_tls_failures_total{kind="handshake"}: 1`)
      yield* snapshotHas(proxy, `tcp_proxy_errors_total{kind="protocol"}: 1`)
      yield* snapshotHas(proxy, `tcp_proxy_errors_total{kind="io"}: 0`)
      const ended = yield* eventually("the failed connection's line", Effect.sync(() =>
        Option.fromNullishOr(closedLines(lines).find((line) => line.annotations.end !== "done"))))
      assert.strictEqual(ended.annotations.end, "protocol_error")
    }).pipe(Effect.provide(captureLogs(lines)))
  })
})

describe("a TLS client that resets while its backend reads nothing", () => {
  it.live("the proxy notices the reset under the TLS session and resets the backend (end=client_reset)", () => {
    const lines: Array<LogLine> = []
    return Effect.gen(function*() {
      const relayed: Array<Net.Socket> = []
      const paused = yield* server((socket) => {
        socket.on("error", () => {})
        socket.once("data", () => {
          socket.pause()
          relayed.push(socket)
        })
      })
      const proxy = yield* startProxy(testConfig([paused.address], { tls: Option.some(files("default")) }))
      const raw = yield* connect(proxy.port)
      raw.on("error", () => {})
      const secure = Tls.connect({ socket: raw, ca, checkServerIdentity: () => undefined })
      secure.on("error", () => {})
      yield* Effect.callback<void>((resume) => {
        secure.once("secureConnect", () => resume(Effect.void))
      })
      const written = new Map<Net.Socket, number>()
      flood(secure, written, 64 * 1024 * 1024)
      yield* untilBlocked(written, 1, 64 * 1024 * 1024)
      raw.resetAndDestroy()
      const ended = yield* eventually("the connection's line", Effect.sync(() =>
        Option.fromNullishOr(closedLines(lines)[0])), 500)
      assert.strictEqual(ended.annotations.end, "client_reset")
      assert.strictEqual(yield* resetSeen(relayed[0]!), "ECONNRESET")
    }).pipe(Effect.provide(captureLogs(lines)))
  }, { timeout: 30_000 })
})

describe("SNI routing", () => {
  const routed = Effect.gen(function*() {
    const api = yield* tlsEchoServer("api", "api:")
    const web = yield* echoServer("web:")
    const fallback = yield* echoServer("default:")
    const config = testConfig([fallback.address], {
      dialTimeout: Duration.millis(500),
      tls: Option.some(files("default")),
      routes: [
        {
          sni: ["api.example.com", "*.api.example.com"],
          mode: "passthrough",
          balancer: Option.none(),
          backends: [backend(api.address)],
          tls: Option.none()
        },
        {
          sni: ["*.web.example.com", "web.example.com"],
          mode: "terminate",
          balancer: Option.some("round-robin"),
          backends: [backend(web.address)],
          tls: Option.some(files("web"))
        }
      ]
    })
    const proxy = yield* startProxy(config)
    return { proxy, config }
  })

  it.live("passthrough delivers the TLS stream to a TLS backend that completes the handshake end to end", () =>
    Effect.gen(function*() {
      const { proxy } = yield* routed
      const exact = yield* tlsExchange(proxy.port, "api.example.com", "one")
      assert.deepStrictEqual([exact.reply, exact.cn], ["api:one", "api"])
      const wildcard = yield* tlsExchange(proxy.port, "v2.api.example.com", "two")
      assert.deepStrictEqual([wildcard.reply, wildcard.cn], ["api:two", "api"])
    }))

  it.live("routes by exact name, by one-label wildcard, and falls back to the default route", () =>
    Effect.gen(function*() {
      const { proxy } = yield* routed
      const exact = yield* tlsExchange(proxy.port, "web.example.com", "a")
      assert.deepStrictEqual([exact.reply, exact.cn], ["web:a", "web"])
      const wildcard = yield* tlsExchange(proxy.port, "shop.web.example.com", "b")
      assert.deepStrictEqual([wildcard.reply, wildcard.cn], ["web:b", "web"])
      // Two labels do not match `*.web.example.com`: the default route, with the top-level certificate.
      const deep = yield* tlsExchange(proxy.port, "a.b.web.example.com", "c")
      assert.deepStrictEqual([deep.reply, deep.cn], ["default:c", "default"])
      const noSni = yield* tlsExchange(proxy.port, undefined, "d")
      assert.deepStrictEqual([noSni.reply, noSni.cn], ["default:d", "default"])
      // A trailing dot names the same host; a name that is no valid host name gets the default route, not a close.
      const dotted = yield* tlsExchange(proxy.port, "web.example.com.", "e")
      assert.deepStrictEqual([dotted.reply, dotted.cn], ["web:e", "web"])
      const underscore = yield* tlsExchange(proxy.port, "my_host.web.example.com", "f")
      assert.deepStrictEqual([underscore.reply, underscore.cn], ["default:f", "default"])
    }))

  it.live("a reload swaps a certificate; a connection open before it keeps working", () =>
    Effect.gen(function*() {
      const { config, proxy } = yield* routed
      const before = yield* tlsExchange(proxy.port, "web.example.com", "x")
      // A connection opened before the reload.
      const held = Tls.connect({ host: "127.0.0.1", port: proxy.port, ca, servername: "web.example.com" })
      held.on("error", () => {})
      yield* Effect.callback<void>((resume) => {
        held.once("secureConnect", () => resume(Effect.void))
      })
      const swapped: Config.ProxyConfig = {
        ...config,
        routes: config.routes.map((route) => route.mode === "terminate" ? { ...route, tls: Option.some(files("web2")) } : route)
      }
      yield* TcpProxy.reconfigure(swapped).pipe(Effect.provide(proxy.context))
      const after = yield* tlsExchange(proxy.port, "web.example.com", "y")
      assert.strictEqual(after.reply, "web:y")
      assert.notStrictEqual(after.fingerprint, before.fingerprint)
      assert.strictEqual(after.fingerprint, fingerprintOf("web2.pem"))
      const reply = Effect.callback<string>((resume) => {
        let text = ""
        held.on("data", (chunk: Buffer) => (text += chunk.toString()))
        held.on("end", () => resume(Effect.succeed(text)))
      })
      held.end("held")
      assert.strictEqual(yield* reply, "web:held")
    }))

  it.live("crafted ClientHellos are rejected cleanly while a good connection in parallel keeps working", () =>
    Effect.gen(function*() {
      const { proxy } = yield* routed
      const good = Tls.connect({ host: "127.0.0.1", port: proxy.port, ca, servername: "web.example.com" })
      good.on("error", () => {})
      yield* Effect.callback<void>((resume) => {
        good.once("secureConnect", () => resume(Effect.void))
      })
      const ask = (message: string) =>
        Effect.callback<string>((resume) => {
          good.once("data", (chunk: Buffer) => resume(Effect.succeed(chunk.toString())))
          good.write(message)
        })
      assert.strictEqual(yield* ask("1"), "web:1")
      const hostile: ReadonlyArray<Buffer> = [
        Buffer.from("GET / HTTP/1.1\r\nHost: web.example.com\r\n\r\n"), // not TLS at all
        Buffer.from([0x16, 0x03, 0x01, 0x00, 0x10, 0x01, 0x00, 0x00]), // truncated, then closed
        Buffer.from([0x16, 0x03, 0x01, 0x40, 0x01]), // a record longer than any ClientHello may be
        Buffer.from([0x16, 0x03, 0x01, 0x00, 0x05, 0x02, 0x00, 0x00, 0x01, 0x00]) // a ServerHello, not a ClientHello
      ]
      for (const bytes of hostile) {
        const socket = yield* connect(proxy.port)
        const closed = readAll(socket)
        socket.end(bytes)
        assert.strictEqual((yield* closed).data.length, 0)
      }
      // Too slow: a record header, then nothing until the dial timeout.
      const slow = yield* connect(proxy.port)
      const slowClosed = readAll(slow)
      slow.once("end", () => slow.end())
      slow.write(Buffer.from([0x16, 0x03, 0x01]))
      yield* slowClosed
      assert.strictEqual(yield* ask("2"), "web:2")
      yield* snapshotHas(proxy, `tcp_proxy_tls_failures_total{kind="client_hello"}: 5`)
      yield* snapshotHas(proxy, `tcp_proxy_errors_total{kind="protocol"}: 5`)
      good.destroy()
    }))
})

const fingerprintOf = (file: string): string => new X509Certificate(readFileSync(fixture(file))).fingerprint256
