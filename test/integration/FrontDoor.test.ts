/**
 * Who may connect, over loopback: clients bound to 127.0.0.x and ::1, access
 * lists, per-IP limits, PROXY headers from a load balancer in front, and TCP
 * keepalive.
 */
import { readFileSync } from "node:fs"
import * as Net from "node:net"
import { assert, describe, it } from "@effect/vitest"
import { Duration, Effect, Option, Result } from "effect"
import * as Cidr from "../../src/domain/Cidr.ts"
import * as ProxyProtocol from "../../src/domain/ProxyProtocol.ts"
import * as TcpProxy from "../../src/TcpProxy.ts"
import {
  captureLogs,
  closedLines,
  echoServer,
  eventually,
  type LogLine,
  readAll,
  server,
  startProxy,
  testConfig,
  until
} from "./helpers.ts"

const ranges = (text: string): ReadonlyArray<Cidr.Range> => Result.getOrThrow(Cidr.parseList(text))

/** A client connection from `from` (a loopback address) to `to`:`port`, destroyed when the scope ends. */
const connectFrom = (from: string, port: number, to = "127.0.0.1") =>
  Effect.acquireRelease(
    Effect.callback<Net.Socket, Error>((resume) => {
      const socket = Net.connect({ host: to, port, localAddress: from, allowHalfOpen: true })
      socket.once("error", (error) => resume(Effect.fail(error)))
      socket.once("connect", () => resume(Effect.succeed(socket)))
    }),
    (socket) => Effect.sync(() => socket.destroy())
  )

/** Sends `data` from `from`, half-closes, and returns what came back until close. */
const exchangeFrom = (from: string, port: number, data: string | Buffer, to = "127.0.0.1") =>
  Effect.scoped(Effect.gen(function*() {
    const socket = yield* connectFrom(from, port, to)
    const received = readAll(socket)
    socket.end(data)
    return yield* received
  }))

/** Whether a client from `from` is served (gets its echo) or closed without a byte. */
const servedFrom = (from: string, port: number, to = "127.0.0.1") =>
  Effect.map(exchangeFrom(from, port, "hi", to), (reply) => reply.data.toString() === "hi")

/** The snapshot's value of a series, 0 when absent. */
const valueOf = (snapshot: string, series: string): number => {
  const line = snapshot.split("\n").find((l) => l.startsWith(`${series}: `))
  return line === undefined ? 0 : Number(line.slice(series.length + 2))
}

/** The `end` words of the `connection closed` lines, by client IP. */
const endsByClient = (lines: ReadonlyArray<LogLine>) =>
  closedLines(lines).map((line) => `${String(line.annotations.client).replace(/:\d+$/, "")} ${String(line.annotations.end)}`)

describe("access lists", () => {
  it.live("--allow serves only its ranges, --deny wins over it; the refused are closed at once, counted and logged", () =>
    Effect.gen(function*() {
      const lines: Array<LogLine> = []
      const backend = yield* echoServer()
      const proxy = yield* startProxy(testConfig([backend.address], {
        allow: ranges("127.0.0.0/30"),
        deny: ranges("127.0.0.2")
      })).pipe(Effect.provide(captureLogs(lines)))
      assert.isTrue(yield* servedFrom("127.0.0.1", proxy.port))
      assert.isFalse(yield* servedFrom("127.0.0.2", proxy.port), "denied, though allowed")
      assert.isTrue(yield* servedFrom("127.0.0.3", proxy.port))
      assert.isFalse(yield* servedFrom("127.0.0.9", proxy.port), "outside --allow")
      yield* until("four log lines", () => closedLines(lines).length === 4)
      assert.deepStrictEqual(endsByClient(lines).sort(), [
        "127.0.0.1 done",
        "127.0.0.2 denied",
        "127.0.0.3 done",
        "127.0.0.9 denied"
      ])
      const snapshot = yield* proxy.metrics.snapshot
      assert.strictEqual(valueOf(snapshot, `tcp_proxy_backend_connections_total{backend="${backend.address}"}`), 2, "no dial for the denied")
      assert.strictEqual(valueOf(snapshot, `tcp_proxy_connections_rejected_total{reason="acl"}`), 2)
      assert.isTrue(lines.some((line) => line.level === "WARN" && line.message.startsWith("connection refused: the client may not connect")))
    }))

  it.live("a reload changes the lists for new connections", () =>
    Effect.gen(function*() {
      const backend = yield* echoServer()
      const config = testConfig([backend.address])
      const proxy = yield* startProxy(config)
      assert.isTrue(yield* servedFrom("127.0.0.5", proxy.port))
      yield* TcpProxy.reconfigure({ ...config, deny: ranges("127.0.0.5/32") }).pipe(Effect.provide(proxy.context))
      assert.isFalse(yield* servedFrom("127.0.0.5", proxy.port))
      assert.isTrue(yield* servedFrom("127.0.0.6", proxy.port))
      yield* TcpProxy.reconfigure(config).pipe(Effect.provide(proxy.context))
      assert.isTrue(yield* servedFrom("127.0.0.5", proxy.port))
    }))

  it.live("on a dual-stack listener an IPv4 client (::ffff:127.0.0.7) matches IPv4 ranges, and ::1 IPv6 ones", () =>
    Effect.gen(function*() {
      const lines: Array<LogLine> = []
      const backend = yield* echoServer()
      const proxy = yield* startProxy(testConfig([backend.address], {
        listen: { host: "::", port: 0 },
        deny: ranges("127.0.0.7, ::1/128")
      })).pipe(Effect.provide(captureLogs(lines)))
      assert.isFalse(yield* servedFrom("127.0.0.7", proxy.port))
      assert.isTrue(yield* servedFrom("127.0.0.8", proxy.port))
      assert.isFalse(yield* servedFrom("::1", proxy.port, "::1"))
      yield* until("three log lines", () => closedLines(lines).length === 3)
      assert.deepStrictEqual(endsByClient(lines).sort(), ["127.0.0.7 denied", "127.0.0.8 done", "[::1] denied"].sort())
    }))
})

describe("per-IP limits", () => {
  it.live("--max-connections-per-ip: one IP past N open is refused, others are not, and a closed one frees a place", () =>
    Effect.gen(function*() {
      const backend = yield* echoServer()
      const proxy = yield* startProxy(testConfig([backend.address], { maxConnectionsPerIp: Option.some(2) }))
      const open = yield* Effect.forEach([1, 2], () => connectFrom("127.0.0.20", proxy.port))
      yield* until("both held", () => backend.accepted.length === 2)
      assert.isFalse(yield* servedFrom("127.0.0.20", proxy.port), "a third from the same IP")
      assert.isTrue(yield* servedFrom("127.0.0.21", proxy.port), "another IP")
      open[0]!.destroy()
      yield* eventually(
        "a place to be free",
        servedFrom("127.0.0.20", proxy.port).pipe(
          Effect.map((served) => served ? Option.some(true) : Option.none()),
          Effect.orElseSucceed(() => Option.none())
        )
      )
      const snapshot = yield* proxy.metrics.snapshot
      assert.isAtLeast(valueOf(snapshot, `tcp_proxy_connections_rejected_total{reason="per_ip_limit"}`), 1)
    }))

  it.live("--connection-rate-per-ip: past N new connections within the period an IP is refused", () =>
    Effect.gen(function*() {
      const lines: Array<LogLine> = []
      const backend = yield* echoServer()
      const proxy = yield* startProxy(testConfig([backend.address], {
        connectionRatePerIp: Option.some({ count: 3, per: Duration.minutes(10) })
      })).pipe(Effect.provide(captureLogs(lines)))
      const served = yield* Effect.forEach([1, 2, 3, 4], () => servedFrom("127.0.0.30", proxy.port))
      assert.deepStrictEqual(served, [true, true, true, false])
      assert.isTrue(yield* servedFrom("127.0.0.31", proxy.port))
      yield* until("five log lines", () => closedLines(lines).length === 5)
      assert.strictEqual(endsByClient(lines).filter((end) => end === "127.0.0.30 rejected").length, 1)
      assert.strictEqual(valueOf(yield* proxy.metrics.snapshot, `tcp_proxy_connections_rejected_total{reason="rate_limit"}`), 1)
    }))

  it.live("3,000 client addresses leave the limits working and the proxy serving", () =>
    Effect.gen(function*() {
      const backend = yield* echoServer()
      const proxy = yield* startProxy(testConfig([backend.address], {
        maxConnectionsPerIp: Option.some(1),
        connectionRatePerIp: Option.some({ count: 100, per: Duration.seconds(1) })
      }))
      const addresses = Array.from({ length: 3000 }, (_, i) => `127.1.${Math.floor(i / 250)}.${(i % 250) + 1}`)
      const served = yield* Effect.forEach(addresses, (from) => servedFrom(from, proxy.port), { concurrency: 50 })
      assert.isTrue(served.every((ok) => ok))
      // Still enforced for an address seen before.
      const held = yield* connectFrom(addresses[0]!, proxy.port)
      yield* until("the connection to be held", () => backend.accepted.some((s) => !s.closed && s.remotePort !== undefined))
      assert.isFalse(yield* servedFrom(addresses[0]!, proxy.port))
      held.destroy()
    }), { timeout: 60_000 })
})

/** A backend that records the PROXY header line (v1) each connection starts with, then echoes. */
const headerRecorder = (headers: Array<string>) =>
  server((socket) => {
    let buffered = ""
    const onData = (chunk: Buffer) => {
      buffered += chunk.toString("latin1")
      const end = buffered.indexOf("\r\n")
      if (end < 0) return
      headers.push(buffered.slice(0, end))
      socket.off("data", onData)
      const rest = buffered.slice(end + 2)
      if (rest !== "") socket.write(rest)
      socket.on("data", (more: Buffer) => socket.write(more))
    }
    socket.on("data", onData)
    socket.on("end", () => socket.end())
  })

const v2Header = (source: string, sourcePort: number) =>
  ProxyProtocol.header("v2", { sourceAddress: source, sourcePort, destinationAddress: "198.51.100.1", destinationPort: 443 })

describe("receiving PROXY protocol", () => {
  it.live("a trusted peer's v2 header names the client for logs, hash and the v1 header sent onward; the bytes after it are the client's", () =>
    Effect.gen(function*() {
      const lines: Array<LogLine> = []
      const headers: Array<string> = []
      const a = yield* headerRecorder(headers)
      const b = yield* headerRecorder(headers)
      const proxy = yield* startProxy(testConfig([a.address, b.address], {
        acceptProxy: ranges("127.0.0.1/32"),
        proxyProtocol: "v1",
        balancer: "hash"
      })).pipe(Effect.provide(captureLogs(lines)))
      // The same carried client, from different peer ports: hash keeps it on one backend.
      for (let i = 0; i < 4; i++) {
        const reply = yield* exchangeFrom("127.0.0.1", proxy.port, Buffer.concat([v2Header("203.0.113.7", 5555 + i), Buffer.from(`ping${i}`)]))
        assert.strictEqual(reply.data.toString(), `ping${i}`)
      }
      // (Health checks send `PROXY UNKNOWN`.)
      const sent = headers.filter((header) => header !== "PROXY UNKNOWN")
      assert.deepStrictEqual(sent, [0, 1, 2, 3].map((i) => `PROXY TCP4 203.0.113.7 198.51.100.1 ${5555 + i} 443`))
      const snapshot = yield* proxy.metrics.snapshot
      const to = (address: string) => valueOf(snapshot, `tcp_proxy_backend_connections_total{backend="${address}"}`)
      assert.deepStrictEqual([to(a.address), to(b.address)].sort(), [0, 4], "one backend for one carried client")
      yield* until("four log lines", () => closedLines(lines).length === 4)
      assert.deepStrictEqual(closedLines(lines).map((line) => line.annotations.client), [
        "203.0.113.7:5555",
        "203.0.113.7:5556",
        "203.0.113.7:5557",
        "203.0.113.7:5558"
      ])
    }))

  it.live("a v1 header works too, a LOCAL header keeps the peer's address, and the lists apply to the carried address", () =>
    Effect.gen(function*() {
      const lines: Array<LogLine> = []
      const backend = yield* echoServer()
      const proxy = yield* startProxy(testConfig([backend.address], {
        acceptProxy: ranges("127.0.0.1"),
        deny: ranges("192.0.2.0/24")
      })).pipe(Effect.provide(captureLogs(lines)))
      const v1 = yield* exchangeFrom("127.0.0.1", proxy.port, "PROXY TCP4 198.51.100.9 10.0.0.1 40000 80\r\nhello")
      assert.strictEqual(v1.data.toString(), "hello")
      const local = ProxyProtocol.localHeader("v2")
      assert.strictEqual((yield* exchangeFrom("127.0.0.1", proxy.port, Buffer.concat([local, Buffer.from("check")]))).data.toString(), "check")
      const denied = yield* exchangeFrom("127.0.0.1", proxy.port, "PROXY TCP4 192.0.2.44 10.0.0.1 40000 80\r\nhello")
      assert.strictEqual(denied.data.length, 0)
      yield* until("three log lines", () => closedLines(lines).length === 3)
      assert.deepStrictEqual(endsByClient(lines), ["198.51.100.9 done", "127.0.0.1 done", "192.0.2.44 denied"])
    }))

  it.live("a peer outside --accept-proxy is denied; garbage, a truncated or a slow header end as protocol_error", () =>
    Effect.gen(function*() {
      const lines: Array<LogLine> = []
      const backend = yield* echoServer()
      const proxy = yield* startProxy(testConfig([backend.address], {
        acceptProxy: ranges("127.0.0.1"),
        dialTimeout: Duration.millis(300)
      })).pipe(Effect.provide(captureLogs(lines)))
      yield* exchangeFrom("127.0.0.2", proxy.port, "PROXY TCP4 198.51.100.9 10.0.0.1 40000 80\r\nhello")
      yield* exchangeFrom("127.0.0.1", proxy.port, "GET / HTTP/1.1\r\n\r\n")
      yield* exchangeFrom("127.0.0.1", proxy.port, "PROXY TCP4 198.51")
      // Slow: half a header, and the connection held open.
      const slow = yield* connectFrom("127.0.0.1", proxy.port)
      const slowReply = readAll(slow)
      slow.once("end", () => slow.end())
      slow.write("PROXY TCP4 ")
      yield* slowReply
      yield* until("four log lines", () => closedLines(lines).length === 4)
      assert.deepStrictEqual(endsByClient(lines).sort(), [
        "127.0.0.1 protocol_error",
        "127.0.0.1 protocol_error",
        "127.0.0.1 protocol_error",
        "127.0.0.2 denied"
      ])
      const snapshot = yield* proxy.metrics.snapshot
      assert.strictEqual(valueOf(snapshot, `tcp_proxy_backend_connections_total{backend="${backend.address}"}`), 0)
      assert.strictEqual(valueOf(snapshot, `tcp_proxy_errors_total{kind="protocol"}`), 3)
      const warnings = lines.filter((line) => line.level === "WARN").map((line) => line.message)
      assert.isTrue(warnings.some((message) => message.startsWith("bad PROXY header: ")))
      assert.isTrue(warnings.some((message) => /incomplete after 300ms/.test(message)))
    }))
})

/** Whether the kernel runs a keepalive timer on the socket with local port `port` talking to `peerPort` (/proc/net/tcp). */
const keepaliveTimerOn = (localPort: number, peerPort: number): boolean =>
  readFileSync("/proc/net/tcp", "utf8").split("\n").slice(1).some((line) => {
    const fields = line.trim().split(/\s+/)
    if (fields.length < 6) return false
    const local = parseInt(fields[1]!.split(":")[1]!, 16)
    const remote = parseInt(fields[2]!.split(":")[1]!, 16)
    // `tr` (fields[5] "tr:when"): 2 is the keepalive timer.
    return local === localPort && remote === peerPort && fields[5]!.split(":")[0] === "02"
  })

describe("keepalive", () => {
  it.live("--tcp-keepalive arms the kernel's keepalive timer on the client and the backend socket", () =>
    Effect.gen(function*() {
      // The backend's side of each relayed connection, known by the byte a client sends (checks send none).
      const relayed: Array<Net.Socket> = []
      const backend = yield* server((socket) => socket.once("data", () => relayed.push(socket)))
      const relayedBy = (port: number) =>
        Effect.gen(function*() {
          const count = relayed.length
          const client = yield* connectFrom("127.0.0.1", port)
          client.write("x")
          yield* until("the backend connection", () => relayed.length === count + 1)
          return { client, backendSide: relayed[count]! }
        })
      const withKeepalive = yield* startProxy(testConfig([backend.address], { tcpKeepalive: Option.some(Duration.seconds(30)) }))
      const kept = yield* relayedBy(withKeepalive.port)
      yield* until("keepalive on the client socket", () => keepaliveTimerOn(withKeepalive.port, kept.client.localPort!))
      yield* until("keepalive on the backend socket", () => keepaliveTimerOn(kept.backendSide.remotePort!, backend.port))
      // Without the flag, neither socket has the timer.
      const plain = yield* startProxy(testConfig([backend.address]))
      const other = yield* relayedBy(plain.port)
      assert.isFalse(keepaliveTimerOn(plain.port, other.client.localPort!))
      assert.isFalse(keepaliveTimerOn(other.backendSide.remotePort!, backend.port))
    }))
})
