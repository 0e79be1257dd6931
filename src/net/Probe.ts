/**
 * Payload health checks over a connected socket (SPEC "Payload checks"):
 * what a check writes (the configured text, or an HTTP request) and how the
 * answer is judged, byte by byte as it arrives, so that a check decides as
 * soon as it can and keeps only a few dozen bytes of what a backend sends.
 *
 * @since 0.1.0
 */
import { isIP } from "node:net"
import type { Duplex } from "node:stream"
import * as Data from "effect/Data"
import * as Effect from "effect/Effect"
import * as Option from "effect/Option"
import { type Backend, type PayloadCheck, serverNameOf } from "../domain/Config.ts"
import * as Text from "../domain/Text.ts"

/** The most bytes of an answer a failure shows. */
export const maxShown = 64

/** What passes: `length` bytes, each accepted or not by its position; `description` names it in messages. */
export interface Answer {
  readonly description: string
  readonly length: number
  readonly accepts: (byte: number, index: number) => boolean
}

/** What a payload check does over a connection: writes `request` (when any), then waits for `answer` (when any); one at least. */
export type Probe =
  | { readonly request: Uint8Array; readonly answer: Answer | undefined }
  | { readonly request: undefined; readonly answer: Answer }

/** A check's text as bytes: a character up to `\xff` is one byte (so `\xHH` is the byte HH); text with others is UTF-8. */
export const bytesOf = (text: string): Buffer => Buffer.from(text, /^[\u0000-\u00ff]*$/.test(text) ? "latin1" : "utf8")

/** An answer that starts with `prefix`. */
export const startsWith = (prefix: Uint8Array): Answer => ({
  description: Text.quoteBytes(prefix, maxShown),
  length: prefix.length,
  accepts: (byte, index) => byte === prefix[index]
})

const isDigit = (byte: number) => byte >= 0x30 && byte <= 0x39

/** A passing status line, byte by byte: `HTTP/1.x 2xx` or `3xx`, then a space or the line's end. */
const statusLine: ReadonlyArray<(byte: number) => boolean> = [
  ...Array.from("HTTP/1.", (char) => (byte: number) => byte === char.charCodeAt(0)),
  isDigit,
  (byte) => byte === 0x20,
  (byte) => byte === 0x32 || byte === 0x33,
  isDigit,
  isDigit,
  (byte) => byte === 0x20 || byte === 0x0d || byte === 0x0a
]

/** An HTTP response with a 2xx or 3xx status. */
export const httpSuccess: Answer = {
  description: "an HTTP 2xx or 3xx status line",
  length: statusLine.length,
  accepts: (byte, index) => statusLine[index]?.(byte) ?? false
}

/** `GET path` with the backend's `Host` (its name for a resolved one; `:port` unless the scheme's default) and `Connection: close`. */
export const httpRequest = (path: string, backend: Backend, tls: boolean): Buffer => {
  const name = serverNameOf(backend)
  const host = isIP(name) === 6 ? `[${name}]` : name
  const port = backend.port === (tls ? 443 : 80) ? "" : `:${backend.port}`
  return Buffer.from(`GET ${path} HTTP/1.1\r\nHost: ${host}${port}\r\nConnection: close\r\n\r\n`, "latin1")
}

/**
 * The probe of a pool's payload check toward `backend` (over TLS or not), or
 * none when the check only connects. `http` takes the place of `send` and
 * `expect`; empty text counts as none.
 */
export const make = (check: PayloadCheck, backend: Backend, tls: boolean): Probe | undefined => {
  if (Option.isSome(check.http)) return { request: httpRequest(check.http.value, backend, tls), answer: httpSuccess }
  const given = (text: Option.Option<string>) => Option.getOrUndefined(Option.filter(text, (value) => value !== ""))
  const send = given(check.send)
  const expect = given(check.expect)
  const answer = expect === undefined ? undefined : startsWith(bytesOf(expect))
  if (send !== undefined) return { request: bytesOf(send), answer }
  return answer === undefined ? undefined : { request: undefined, answer }
}

/** A payload check that failed: why, on one line, and the first bytes the backend sent. */
export class ProbeError extends Data.TaggedError("ProbeError")<{
  readonly reason: string
  readonly received: Uint8Array
}> {
  override get message(): string {
    return this.reason
  }
}

/**
 * Runs `probe` over a connected stream within `timeoutMs`: writes the
 * request, then reads only until what arrived passes or cannot pass any more
 * (keeping only the bytes needed to judge and to show); with no answer to
 * wait for, passes once the request is flushed. A stream that ends, fails or
 * runs out of time first fails the check. The stream is left to the caller
 * to destroy.
 */
export const run = (stream: Duplex, probe: Probe, timeoutMs: number): Effect.Effect<void, ProbeError> =>
  Effect.callback<void, ProbeError>((resume) => {
    const { answer } = probe
    // Enough to judge the answer, and to show maxShown bytes and whether more came.
    const kept = Buffer.alloc(answer === undefined ? 0 : Math.max(answer.length, maxShown + 1))
    let length = 0
    const stop = () => {
      clearTimeout(timer)
      stream.pause()
      stream.off("data", onData)
      stream.off("end", onEnd)
      stream.off("close", onEnd)
      stream.off("error", onError)
    }
    const pass = () => {
      stop()
      resume(Effect.void)
    }
    /** Fails with what was expected and what arrived; `ending` says how the exchange ended when not by a mismatch. */
    const fail = (ending: string) => {
      stop()
      const received = kept.subarray(0, length)
      const got = length === 0 ? "nothing" : Text.quoteBytes(received, maxShown)
      const reason = answer === undefined
        ? `could not send the request${ending}`
        : `expected ${answer.description}, got ${got}${ending}`
      resume(Effect.fail(new ProbeError({ reason, received })))
    }
    const onData = (chunk: Buffer) => {
      if (answer === undefined) return
      const from = length
      length += chunk.copy(kept, length)
      for (let index = from; index < Math.min(length, answer.length); index++) {
        if (!answer.accepts(kept[index]!, index)) return fail("")
      }
      if (length >= answer.length) pass()
    }
    const onEnd = () => fail(" before the connection closed")
    const onError = (error: NodeJS.ErrnoException) => fail(` before the connection failed (${error.code ?? error.message})`)
    const timer = setTimeout(() => fail(" within the health timeout"), timeoutMs)
    stream.on("error", onError)
    stream.on("close", onEnd)
    if (probe.answer === undefined) {
      stream.write(probe.request, (error) => (error === undefined || error === null ? pass() : onError(error)))
    } else {
      if (probe.request !== undefined) stream.write(probe.request)
      stream.on("end", onEnd)
      stream.on("data", onData)
    }
    return Effect.sync(stop)
  })
