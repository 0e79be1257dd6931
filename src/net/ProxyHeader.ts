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
import * as Effect from "effect/Effect"
import * as ProxyProtocolReader from "../domain/ProxyProtocolReader.ts"
import { ProxyHeaderError } from "../services/Connection.ts"

/** Reads the header within `timeoutMs`; the socket is left paused, at the client's first byte. */
export const readProxyHeader = (socket: Net.Socket, timeoutMs: number) =>
  Effect.callback<ProxyProtocolReader.Header, ProxyHeaderError>((resume) => {
    let buffered: Buffer = Buffer.alloc(0)
    const done = (outcome: Effect.Effect<ProxyProtocolReader.Header, ProxyHeaderError>) => {
      clearTimeout(timer)
      socket.off("data", onData)
      socket.off("end", onEnd)
      socket.off("close", onEnd)
      socket.pause()
      resume(outcome)
    }
    const onData = (chunk: Buffer) => {
      buffered = buffered.length === 0 ? chunk : Buffer.concat([buffered, chunk])
      const read = ProxyProtocolReader.read(buffered)
      switch (read._tag) {
        case "NeedMore":
          return
        case "Malformed":
          return done(Effect.fail(new ProxyHeaderError({ reason: read.reason })))
        case "Header": {
          done(Effect.succeed(read.header))
          if (read.length < buffered.length) socket.unshift(buffered.subarray(read.length))
        }
      }
    }
    const onEnd = () =>
      done(Effect.fail(new ProxyHeaderError({
        reason: buffered.length === 0 ? "closed before any byte" : `closed after ${buffered.length} bytes of it`
      })))
    const timer = setTimeout(
      () => done(Effect.fail(new ProxyHeaderError({ reason: `incomplete after ${timeoutMs}ms` }))),
      timeoutMs
    )
    socket.on("data", onData)
    socket.once("end", onEnd)
    socket.once("close", onEnd)
    socket.resume()
    return Effect.sync(() => clearTimeout(timer))
  })
