/**
 * Reads the PROXY protocol header (v1 or v2) a load balancer in front sends
 * before its client's bytes: incrementally, as the bytes arrive, bounded by
 * the parser (v1 at most 107 bytes, v2 at most 16 + 4096) and by a deadline.
 * What came after the header goes back into the socket (`unshift`), so the
 * rest of the connection reads the client's bytes from the first one.
 *
 * @since 0.1.0
 */
import type * as Net from "node:net"
import * as ProxyProtocolReader from "../domain/ProxyProtocolReader.ts"
import { ProxyHeaderError } from "../services/Connection.ts"
import { readPrefix } from "./ReadPrefix.ts"

/** Reads the header within `timeoutMs`; the socket is left paused, at the client's first byte. */
export const readProxyHeader = (socket: Net.Socket, timeoutMs: number) =>
  readPrefix(socket, timeoutMs, {
    parse: (buffered) => {
      const read = ProxyProtocolReader.read(buffered)
      switch (read._tag) {
        case "NeedMore":
          return { _tag: "More" }
        case "Malformed":
          return { _tag: "Failed", error: new ProxyHeaderError({ reason: read.reason }) }
        case "Header":
          return { _tag: "Done", value: read.header, used: read.length }
      }
    },
    truncated: (bytes) =>
      new ProxyHeaderError({ reason: bytes === 0 ? "closed before any byte" : `closed after ${bytes} bytes of it` }),
    timedOut: (timeoutMs) => new ProxyHeaderError({ reason: `incomplete after ${timeoutMs}ms` })
  })
