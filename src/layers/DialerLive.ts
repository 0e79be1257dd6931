/**
 * Dials backends with `node:net`.
 *
 * @since 0.1.0
 */
import * as Net from "node:net"
import * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
import * as Layer from "effect/Layer"
import { DialError, Dialer } from "../services/Dialer.ts"

const reasonOf = (error: NodeJS.ErrnoException): DialError["reason"] => {
  switch (error.code) {
    case "ECONNREFUSED":
      return "refused"
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

const ignore = () => {}

/**
 * Dials over TCP with `noDelay` and half-close allowed. A plain timer bounds
 * the connect and is cleared once connected (a socket's own timeout would stay
 * attached to the socket for its whole life).
 */
export const layer: Layer.Layer<Dialer> = Layer.succeed(Dialer)({
  dial: (backend, timeout) =>
    Effect.callback<Net.Socket, DialError>((resume) => {
      const socket = Net.connect({
        host: backend.host,
        port: backend.port,
        allowHalfOpen: true,
        noDelay: true
      })
      const fail = (reason: DialError["reason"], cause?: unknown) => {
        clearTimeout(timer)
        socket.destroy()
        resume(Effect.fail(new DialError({ backend: backend.address, reason, cause })))
      }
      const onError = (error: NodeJS.ErrnoException) => fail(reasonOf(error), error)
      const timer = setTimeout(() => fail("timeout"), Duration.toMillis(timeout))
      socket.once("error", onError)
      socket.once("connect", () => {
        clearTimeout(timer)
        socket.off("error", onError)
        // Until the relay watches it, an error on the socket must not crash the process.
        socket.on("error", ignore)
        resume(Effect.succeed(socket))
      })
      return Effect.sync(() => {
        clearTimeout(timer)
        socket.destroy()
      })
    })
})
