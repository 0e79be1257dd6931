/**
 * Dials backends with `node:net`.
 *
 * @since 0.1.0
 */
import * as Net from "node:net"
import * as Effect from "effect/Effect"
import { constVoid } from "effect/Function"
import * as Layer from "effect/Layer"
import { DialError, type DialFailure, Dialer } from "../services/Dialer.ts"

/** System errors that mean the proxy itself ran out of something, not that the backend failed. */
const localCodes = new Set(["EMFILE", "ENFILE", "EADDRNOTAVAIL", "ENOBUFS", "ENOMEM"])

/** What a dial's system error says. */
export const failureOf = (code: string | undefined): DialFailure => {
  if (code !== undefined && localCodes.has(code)) return "local"
  switch (code) {
    case "ECONNREFUSED":
      return "refused"
    case "ECONNRESET":
      return "reset"
    case "EHOSTUNREACH":
    case "ENETUNREACH":
    case "ENOTFOUND":
    case "EAI_AGAIN":
      return "unreachable"
    case "ETIMEDOUT":
      return "timeout"
    default:
      return "other"
  }
}

/** Node passes stream options such as `highWaterMark` on to the socket; the typings leave them out. */
interface DialOptions extends Net.TcpNetConnectOpts {
  readonly highWaterMark: number
}

/**
 * Dials over TCP with `noDelay` and half-close allowed, and a high-water mark
 * of one byte: a write reports backpressure as soon as one is pending, so a
 * backend that does not read holds one chunk of its client's bytes. A plain
 * timer bounds the connect and is cleared once connected (a socket's own
 * timeout would stay attached to the socket for its whole life).
 */
export const layer: Layer.Layer<Dialer> = Layer.succeed(Dialer)({
  dial: (backend, timeoutMs, reads) =>
    Effect.callback<Net.Socket, DialError>((resume) => {
      const options: DialOptions = {
        host: backend.host,
        port: backend.port,
        allowHalfOpen: true,
        noDelay: true,
        highWaterMark: 1,
        onread: reads?.onread
      }
      const socket = Net.connect(options)
      const fail = (reason: DialFailure, code: string | undefined) => {
        clearTimeout(timer)
        socket.destroy()
        resume(Effect.fail(new DialError({ backend: backend.address, reason, code })))
      }
      const timer = setTimeout(() => fail("timeout", undefined), timeoutMs)
      const onError = (error: NodeJS.ErrnoException) => fail(failureOf(error.code), error.code)
      // Once connected the dial lets go of its listeners: an open connection keeps none of this scope. An error is
      // then the relay's to see; until it watches, the shared no-op `constVoid` keeps one from crashing the process.
      const onConnect = () => {
        clearTimeout(timer)
        socket.removeListener("connect", onConnect)
        socket.removeListener("error", onError)
        socket.on("error", constVoid)
        resume(Effect.succeed(socket))
      }
      socket.on("error", onError)
      socket.on("connect", onConnect)
      return Effect.sync(() => {
        clearTimeout(timer)
        socket.destroy()
      })
    })
})
