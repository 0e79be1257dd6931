import { readFileSync } from "node:fs"
import type * as Net from "node:net"
import * as Tls from "node:tls"
import { fileURLToPath } from "node:url"
import { assert, describe, it } from "@effect/vitest"
import { Effect, Layer, Option, References, Result } from "effect"
import * as Config from "../../src/domain/Config.ts"
import * as ProxyProtocol from "../../src/domain/ProxyProtocol.ts"
import * as Text from "../../src/domain/Text.ts"
import * as DialerLive from "../../src/layers/DialerLive.ts"
import * as HealthCheckLive from "../../src/layers/HealthCheckLive.ts"
import * as Probe from "../../src/net/Probe.ts"
import { type CheckOptions, HealthCheck } from "../../src/services/HealthCheck.ts"
import { captureLogs, type LogLine, server, until } from "../integration/helpers.ts"

const fixture = (name: string) => fileURLToPath(new URL(`../fixtures/tls/${name}`, import.meta.url))
const backendAt = (address: string) => Result.getOrThrow(Config.backend(address))

/** What a backend's accepted connections received, and whether the check has closed each (FIN or reset). */
interface Seen {
  readonly received: Array<Buffer>
  readonly closed: Array<boolean>
}

/**
 * A backend that gathers what each connection sends and, once `reply` has an
 * answer to all of it so far, writes that answer (once per connection).
 * `onConnect` runs first, for backends that speak first or hang up.
 */
const backend = (
  reply: (received: Buffer) => string | Buffer | undefined,
  onConnect: (socket: Net.Socket) => void = () => {}
) =>
  Effect.gen(function*() {
    const seen: Seen = { received: [], closed: [] }
    const srv = yield* server((socket) => {
      const index = seen.received.length
      seen.received.push(Buffer.alloc(0))
      seen.closed.push(false)
      socket.once("end", () => (seen.closed[index] = true))
      socket.once("close", () => (seen.closed[index] = true))
      let answered = false
      socket.on("data", (chunk: Buffer) => {
        seen.received[index] = Buffer.concat([seen.received[index]!, chunk])
        const answer = answered ? undefined : reply(seen.received[index]!)
        if (answer === undefined) return
        answered = true
        socket.write(answer)
      })
      onConnect(socket)
    })
    return { ...srv, seen }
  })

/** Answers `answer` to a complete line (ending in `\n`). */
const perLine = (answer: string) => (received: Buffer) => (received.includes("\n") ? answer : undefined)

/** Answers an HTTP request (once its head is complete) with `statusLine` and a short body. */
const http = (statusLine: string) => (received: Buffer) =>
  received.includes("\r\n\r\n") ? `${statusLine}\r\nContent-Length: 2\r\nConnection: close\r\n\r\nok` : undefined

const never = () => undefined

const plain: CheckOptions = { timeoutMs: 2_000, proxyProtocol: "off", tls: undefined, payload: Config.connectOnly }

/** The payload check parts given, the rest none. */
const payload = (parts: { readonly send?: string; readonly expect?: string; readonly http?: string }): Config.PayloadCheck => ({
  send: Option.fromUndefinedOr(parts.send),
  expect: Option.fromUndefinedOr(parts.expect),
  http: Option.fromUndefinedOr(parts.http)
})

/** One check of `target` with the real layer over the real dialer. */
const check = (target: Config.Backend, options: Partial<CheckOptions>) =>
  HealthCheck.use((healthCheck) => healthCheck.check(target, { ...plain, ...options })).pipe(
    Effect.provide(HealthCheckLive.layer.pipe(Layer.provide(DialerLive.layer)))
  )

/** The reason a check fails with. */
const failure = (target: Config.Backend, options: Partial<CheckOptions>) =>
  Effect.map(Effect.flip(check(target, options)), (error) => error.reason)

const redis = payload({ send: "PING\r\n", expect: "+PONG" })

describe("payload checks", () => {
  it.live("send and expect: passes when the answer starts with the expected text", () =>
    Effect.gen(function*() {
      const target = yield* backend(perLine("+PONG\r\n"))
      yield* check(backendAt(target.address), { payload: redis })
      assert.strictEqual(target.seen.received[0]?.toString(), "PING\r\n")
      yield* until("the check's connection to close", () => target.seen.closed[0] === true)
    }))

  it.live("send and expect: fails on another answer, saying what was expected and what came", () =>
    Effect.gen(function*() {
      const target = yield* backend(perLine("-ERR unknown command 'PING'\r\n"))
      const reason = yield* failure(backendAt(target.address), { payload: redis })
      assert.strictEqual(reason, `expected "+PONG", got "-ERR unknown command 'PING'\\r\\n"`)
    }))

  it.live("an answer that cannot match any more fails at once, not when the timeout runs out", () =>
    Effect.gen(function*() {
      // "+PA" goes wrong at its third byte, and the backend then holds the connection open.
      const target = yield* backend(perLine("+PA"))
      const started = Date.now()
      const reason = yield* failure(backendAt(target.address), { payload: redis, timeoutMs: 60_000 })
      assert.strictEqual(reason, `expected "+PONG", got "+PA"`)
      assert.isBelow(Date.now() - started, 10_000)
    }))

  it.live("expect without send: a backend that speaks first passes, and is sent nothing", () =>
    Effect.gen(function*() {
      const target = yield* backend(never, (socket) => socket.write("220 mail.example.com ESMTP\r\n"))
      yield* check(backendAt(target.address), { payload: payload({ expect: "220 " }) })
      yield* until("the check's connection to close", () => target.seen.closed[0] === true)
      assert.strictEqual(target.seen.received[0]?.length, 0)
      const reason = yield* failure(backendAt(target.address), { payload: payload({ expect: "+OK" }) })
      assert.strictEqual(reason, `expected "+OK", got "220 mail.example.com ESMTP\\r\\n"`)
    }))

  it.live("send without expect: passes once the text is sent, without waiting for an answer", () =>
    Effect.gen(function*() {
      const target = yield* backend(never)
      yield* check(backendAt(target.address), { payload: payload({ send: "HELLO\x00\xff" }), timeoutMs: 60_000 })
      yield* until("the text to arrive", () => target.seen.received[0]?.equals(Buffer.from([...Buffer.from("HELLO"), 0, 0xff])) === true)
    }))

  it.live("a backend that closes before answering in full fails", () =>
    Effect.gen(function*() {
      const silent = yield* backend(never, (socket) => socket.end())
      assert.strictEqual(
        yield* failure(backendAt(silent.address), { payload: redis }),
        `expected "+PONG", got nothing before the connection closed`
      )
      const partial = yield* backend(never, (socket) => socket.end("+PO"))
      assert.strictEqual(
        yield* failure(backendAt(partial.address), { payload: redis }),
        `expected "+PONG", got "+PO" before the connection closed`
      )
    }))

  it.live("a backend that never answers fails when the health timeout runs out", () =>
    Effect.gen(function*() {
      const target = yield* backend(never)
      const reason = yield* failure(backendAt(target.address), { payload: redis, timeoutMs: 200 })
      assert.strictEqual(reason, `expected "+PONG", got nothing within the health timeout`)
    }))

  it.live("what a failure shows of a long answer is cut at 64 bytes, escaped", () =>
    Effect.gen(function*() {
      const target = yield* backend(perLine(`-${"x".repeat(100)}\x07\r\n`))
      const reason = yield* failure(backendAt(target.address), { payload: redis })
      assert.strictEqual(reason, `expected "+PONG", got "-${"x".repeat(63)}"...`)
    }))

  it.live("a failed payload check is logged at debug level with what arrived", () =>
    Effect.gen(function*() {
      const lines: Array<LogLine> = []
      const target = yield* backend(perLine("-ERR\x07\r\n"))
      yield* failure(backendAt(target.address), { payload: redis }).pipe(
        Effect.provide(Layer.merge(captureLogs(lines), Layer.succeed(References.MinimumLogLevel, "Debug")))
      )
      const line = lines.find((line) => line.level === "DEBUG")
      assert.strictEqual(line?.message, `health check of ${target.address} failed: expected "+PONG", got "-ERR\\x07\\r\\n"`)
      assert.strictEqual(line?.annotations.received, `"-ERR\\x07\\r\\n"`)
    }))

  it.live("--health-http: 2xx and 3xx pass; another status or something other than HTTP fails", () =>
    Effect.gen(function*() {
      const options = { payload: payload({ http: "/healthz", send: "ignored", expect: "ignored" }) }
      for (const status of ["HTTP/1.1 200 OK", "HTTP/1.0 204 No Content", "HTTP/1.1 301 Moved Permanently", "HTTP/1.1 200"]) {
        const target = yield* backend(http(status))
        yield* check(backendAt(target.address), options)
      }
      for (const status of ["HTTP/1.1 503 Service Unavailable", "SSH-2.0-OpenSSH_9.6", "HTTP/1.1 2000 OK", "HTTP/1.1 20"]) {
        const target = yield* backend(http(status))
        const reason = yield* failure(backendAt(target.address), options)
        assert.isTrue(reason.startsWith(`expected an HTTP 2xx or 3xx status line, got "${status}\\r\\n`), reason)
      }
    }))

  it.live("--health-http sends GET with the backend's Host (its name when resolved) and Connection: close", () =>
    Effect.gen(function*() {
      const target = yield* backend(http("HTTP/1.1 200 OK"))
      const options = { payload: payload({ http: "/healthz?full=1" }) }
      yield* check(backendAt(target.address), options)
      assert.strictEqual(
        target.seen.received[0]?.toString(),
        `GET /healthz?full=1 HTTP/1.1\r\nHost: 127.0.0.1:${target.port}\r\nConnection: close\r\n\r\n`
      )
      yield* check({ ...backendAt(target.address), name: `api.example.com:${target.port}` }, options)
      assert.include(target.seen.received[1]?.toString(), `\r\nHost: api.example.com:${target.port}\r\n`)
    }))

  it("the Host header leaves out the scheme's default port and brackets IPv6", () => {
    const host = (address: string, tls = false, name?: string) => {
      const request = Probe.httpRequest("/", { ...backendAt(address), ...(name === undefined ? {} : { name }) }, tls)
      return /\r\nHost: (.*)\r\n/.exec(request.toString())?.[1]
    }
    assert.strictEqual(host("10.0.0.5:80"), "10.0.0.5")
    assert.strictEqual(host("10.0.0.5:443"), "10.0.0.5:443")
    assert.strictEqual(host("10.0.0.5:443", true), "10.0.0.5")
    assert.strictEqual(host("10.0.0.5:80", false, "web.internal:80"), "web.internal")
    assert.strictEqual(host("[::1]:8080"), "[::1]:8080")
    assert.strictEqual(host("[::1]:80"), "[::1]")
  })

  it.live("with --proxy-protocol the header goes first, then the payload", () =>
    Effect.gen(function*() {
      const header = ProxyProtocol.localHeader("v2")
      const target = yield* backend((received) =>
        received.length >= header.length && received.subarray(header.length).includes("\n") ? "+PONG\r\n" : undefined
      )
      yield* check(backendAt(target.address), { payload: redis, proxyProtocol: "v2" })
      assert.isTrue(target.seen.received[0]?.equals(Buffer.concat([header, Buffer.from("PING\r\n")])))
    }))

  it.live("with --backend-tls the payload goes over the verified TLS session", () =>
    Effect.gen(function*() {
      const received: Array<string> = []
      const tlsServer = yield* Effect.acquireRelease(
        Effect.callback<Tls.Server>((resume) => {
          const srv = Tls.createServer(
            { cert: readFileSync(fixture("backend.pem")), key: readFileSync(fixture("backend.key")) },
            (socket) => {
              socket.on("error", () => {})
              socket.on("data", (chunk: Buffer) => {
                received.push(chunk.toString())
                socket.write(chunk.toString() === "PING\r\n" ? "+PONG\r\n" : "-ERR\r\n")
              })
            }
          )
          srv.listen(0, "127.0.0.1", () => resume(Effect.succeed(srv)))
        }),
        (srv) => Effect.callback<void>((resume) => void srv.close(() => resume(Effect.void)))
      )
      const bound = tlsServer.address()
      const target = backendAt(`127.0.0.1:${bound !== null && typeof bound === "object" ? bound.port : 0}`)
      const tls = { ca: fixture("ca.pem") }
      yield* check(target, { payload: redis, tls })
      assert.deepStrictEqual(received, ["PING\r\n"])
      const reason = yield* failure(target, { payload: payload({ send: "QUIT\r\n", expect: "+PONG" }), tls })
      assert.strictEqual(reason, `expected "+PONG", got "-ERR\\r\\n"`)
    }))
})

describe("Text.quoteBytes", () => {
  it("shows bytes as the flags' escapes read them back", () => {
    const bytes = Buffer.from([0x2b, 0x0d, 0x0a, 0x09, 0x5c, 0x22, 0x00, 0x7f, 0xff])
    const shown = Text.quoteBytes(bytes, 64)
    assert.strictEqual(shown, `"+\\r\\n\\t\\\\\\x22\\x00\\x7f\\xff"`)
    assert.deepStrictEqual(Text.unescape(shown.slice(1, -1)), Result.succeed(bytes.toString("latin1")))
    assert.strictEqual(Text.quoteBytes(Buffer.from("abcdef"), 3), `"abc"...`)
  })
})

describe("Probe.make", () => {
  it("connects only when nothing (or only empty text) is given", () => {
    const target = backendAt("10.0.0.5:6379")
    assert.isUndefined(Probe.make(Config.connectOnly, target, false))
    assert.isUndefined(Probe.make(payload({ send: "", expect: "" }), target, false))
  })

  it("sends \\xHH as the byte HH, and text beyond \\xff as UTF-8", () => {
    assert.deepStrictEqual([...Probe.bytesOf("\x04\xd2\x16/")], [0x04, 0xd2, 0x16, 0x2f])
    assert.deepStrictEqual([...Probe.bytesOf("€")], [0xe2, 0x82, 0xac])
  })
})
