/**
 * Dials backends with `node:net`.
 *
 * @since 0.1.0
 */
import * as Net from "node:net"
import { Duration, Effect, Layer } from "effect"
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

/** Dials over TCP with `noDelay` and half-close allowed; the socket's own timer bounds the connect. */
export const layer: Layer.Layer<Dialer> = Layer.succeed(Dialer)({
  dial: (backend, timeout) =>
    Effect.callback<Net.Socket, DialError>((resume) => {
      const socket = Net.connect({
        host: backend.host,
        port: backend.port,
        allowHalfOpen: true,
        noDelay: true,
        timeout: Duration.toMillis(timeout)
      })
      const fail = (reason: DialError["reason"], cause?: unknown) => {
        socket.destroy()
        resume(Effect.fail(new DialError({ backend: backend.address, reason, cause })))
      }
      const onError = (error: NodeJS.ErrnoException) => fail(reasonOf(error), error)
      const onTimeout = () => fail("timeout")
      socket.once("error", onError)
      socket.once("timeout", onTimeout)
      socket.once("connect", () => {
        socket.off("error", onError)
        socket.off("timeout", onTimeout)
        socket.setTimeout(0)
        resume(Effect.succeed(socket))
      })
      return Effect.sync(() => socket.destroy())
    })
})
