/**
 * Reads the first bytes of a connection until a parser has what it needs:
 * a PROXY header, a ClientHello. Bounded by a deadline and by the parser
 * (which fails once too much came without an answer); a peer that closes
 * first fails too. The socket is left paused, and bytes read past what the
 * parser used go back into it (`unshift`), so the rest of the connection
 * reads on from there.
 *
 * @since 0.1.0
 */
import type * as Net from "node:net"
import * as Effect from "effect/Effect"

/** What a parser says of everything read so far. */
export type Parsed<A, E> =
  /** Read on. */
  | { readonly _tag: "More" }
  /** Done: the value, and how many of the bytes read it used. */
  | { readonly _tag: "Done"; readonly value: A; readonly used: number }
  | { readonly _tag: "Failed"; readonly error: E }

/** How to read: the parser, and the errors for a peer that closes first and for the deadline. */
export interface Reading<A, E> {
  readonly parse: (buffered: Buffer) => Parsed<A, E>
  readonly truncated: (bytes: number) => E
  readonly timedOut: (timeoutMs: number) => E
}

/** Reads from `socket` until `reading.parse` is done, within `timeoutMs`. */
export const readPrefix = <A, E>(socket: Net.Socket, timeoutMs: number, reading: Reading<A, E>) =>
  Effect.callback<A, E>((resume) => {
    let buffered: Buffer = Buffer.alloc(0)
    /** Stops reading, gives back what `outcome` did not use (before the fiber goes on with the socket), resumes. */
    const done = (outcome: Effect.Effect<A, E>, unused?: Buffer) => {
      clearTimeout(timer)
      socket.off("data", onData)
      socket.off("end", onEnd)
      socket.off("close", onEnd)
      socket.pause()
      if (unused !== undefined) socket.unshift(unused)
      resume(outcome)
    }
    const onData = (chunk: Buffer) => {
      buffered = buffered.length === 0 ? chunk : Buffer.concat([buffered, chunk])
      const parsed = reading.parse(buffered)
      switch (parsed._tag) {
        case "More":
          return
        case "Failed":
          return done(Effect.fail(parsed.error))
        case "Done":
          return done(
            Effect.succeed(parsed.value),
            parsed.used < buffered.length ? buffered.subarray(parsed.used) : undefined
          )
      }
    }
    const onEnd = () => done(Effect.fail(reading.truncated(buffered.length)))
    const timer = setTimeout(() => done(Effect.fail(reading.timedOut(timeoutMs))), timeoutMs)
    socket.on("data", onData)
    socket.once("end", onEnd)
    socket.once("close", onEnd)
    socket.resume()
    return Effect.sync(() => clearTimeout(timer))
  })
