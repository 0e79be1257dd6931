import type * as Net from "node:net"
import { assert, describe, it } from "@effect/vitest"
import { Effect } from "effect"
import * as ProxyProtocol from "../../src/domain/ProxyProtocol.ts"
import { captureLogs, closedLines, connect, type LogLine, readAll, server, startProxy, testConfig, until } from "./helpers.ts"

/** A backend that records what each connection sent, and answers "ok" once the client has half-closed. */
const recordingBackend = Effect.gen(function*() {
  const received = new Map<Net.Socket, Buffer>()
  const backend = yield* server((socket) => {
    const chunks: Array<Buffer> = []
    received.set(socket, Buffer.alloc(0))
    socket.on("data", (chunk: Buffer) => {
      chunks.push(chunk)
      received.set(socket, Buffer.concat(chunks))
    })
    socket.on("end", () => socket.end("ok"))
  })
  /** What each client connection sent: health checks (which send a client-less header only) left out. */
  const fromClients = () =>
    [...received.values()].filter((bytes) =>
      bytes.length > 0 && !bytes.equals(ProxyProtocol.localHeader("v1")) && !bytes.equals(ProxyProtocol.localHeader("v2"))
    )
  return { backend, received, fromClients }
})

/** Connects to the proxy, sends `payload`, half-closes and waits for the reply; returns the client's ports. */
const send = (port: number, payload: string) =>
  Effect.scoped(Effect.gen(function*() {
    const client = yield* connect(port)
    const reply = readAll(client)
    const ends = { sourcePort: client.localPort!, destinationPort: client.remotePort! }
    client.end(payload)
    assert.strictEqual((yield* reply).data.toString(), "ok")
    return ends
  }))

describe("PROXY protocol", () => {
  for (const mode of ["v1", "v2"] as const) {
    it.live(`${mode}: the header comes first on each backend connection, health checks carry a client-less one`, () =>
      Effect.gen(function*() {
        const { backend, fromClients, received } = yield* recordingBackend
        const proxy = yield* startProxy(testConfig([backend.address], { proxyProtocol: mode }))
        const ends = yield* send(proxy.port, "payload")
        const expected = ProxyProtocol.header(mode, {
          sourceAddress: "127.0.0.1",
          sourcePort: ends.sourcePort,
          destinationAddress: "127.0.0.1",
          destinationPort: proxy.port
        })
        const withData = fromClients()
        assert.strictEqual(withData.length, 1)
        assert.deepStrictEqual(withData[0], Buffer.concat([expected, Buffer.from("payload")]))
        // The first active check ran at start: a connection that carried the header of no client
        // (`PROXY UNKNOWN` in v1, the LOCAL command in v2), so that a backend requiring the protocol accepts it.
        const local = ProxyProtocol.localHeader(mode)
        yield* until("a health check connection", () => [...received.values()].some((bytes) => bytes.equals(local)))
        assert.deepStrictEqual(
          local,
          mode === "v1"
            ? Buffer.from("PROXY UNKNOWN\r\n")
            : Buffer.from([0x0d, 0x0a, 0x0d, 0x0a, 0x00, 0x0d, 0x0a, 0x51, 0x55, 0x49, 0x54, 0x0a, 0x20, 0x00, 0x00, 0x00])
        )
      }))
  }

  it.live("v1 and v2 carry an IPv6 client as TCP6", () =>
    Effect.gen(function*() {
      const { backend, fromClients, received } = yield* recordingBackend
      for (const mode of ["v1", "v2"] as const) {
        received.clear()
        yield* Effect.scoped(Effect.gen(function*() {
          const proxy = yield* startProxy(testConfig([backend.address], { proxyProtocol: mode, listen: { host: "::1", port: 0 } }))
          const client = yield* Effect.scoped(Effect.gen(function*() {
            const socket = yield* connect(proxy.port, "::1")
            const reply = readAll(socket)
            const sourcePort = socket.localPort!
            socket.end("six")
            yield* reply
            return sourcePort
          }))
          const [bytes] = fromClients()
          const header = ProxyProtocol.header(mode, {
            sourceAddress: "::1",
            sourcePort: client,
            destinationAddress: "::1",
            destinationPort: proxy.port
          })
          assert.deepStrictEqual(bytes, Buffer.concat([header, Buffer.from("six")]))
        }))
      }
    }))

  it.live("an IPv4 client of a dual-stack listener is IPv4 in the PROXY header and in the log (not ::ffff:)", () => {
    const lines: Array<LogLine> = []
    return Effect.gen(function*() {
      const { backend, fromClients } = yield* recordingBackend
      // Every interface: on a dual-stack host, IPv4 clients arrive as ::ffff:a.b.c.d.
      const proxy = yield* startProxy(testConfig([backend.address], { proxyProtocol: "v1", listen: { host: undefined, port: 0 } }))
      const ends = yield* send(proxy.port, "mapped")
      const [bytes] = fromClients()
      assert.strictEqual(bytes?.toString(), `PROXY TCP4 127.0.0.1 127.0.0.1 ${ends.sourcePort} ${proxy.port}\r\nmapped`)
      yield* until("the connection line", () => closedLines(lines).length === 1)
      assert.strictEqual(closedLines(lines)[0]!.annotations.client, `127.0.0.1:${ends.sourcePort}`)
    }).pipe(Effect.provide(captureLogs(lines)))
  })
})
