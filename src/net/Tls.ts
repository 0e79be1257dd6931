/**
 * TLS on the connection path: reading the ClientHello just far enough for
 * the server name (bounded in size and time), completing a handshake as the
 * server (termination), and opening TLS toward a backend (re-encryption).
 *
 * @since 0.1.0
 */
import { readFileSync } from "node:fs"
import * as Net from "node:net"
import { Duplex } from "node:stream"
import * as Tls from "node:tls"
import * as Effect from "effect/Effect"
import * as ClientHello from "../domain/ClientHello.ts"
import type { CertificateFiles } from "../domain/Config.ts"
import { ClientHelloError, HandshakeError, TlsConfigError } from "../services/Routes.ts"
import { readPrefix } from "./ReadPrefix.ts"

const readFile = (file: string) =>
  Effect.try({ try: () => readFileSync(file), catch: (cause) => new TlsConfigError({ file, cause }) })

/** Loads a certificate and its key (PEM) into a server context. */
export const secureContext = Effect.fnUntraced(function*(files: CertificateFiles) {
  const cert = yield* readFile(files.cert)
  const key = yield* readFile(files.key)
  return yield* Effect.try({
    try: () => Tls.createSecureContext({ cert, key }),
    catch: (cause) => new TlsConfigError({ file: `${files.cert} / ${files.key}`, cause })
  })
})

/** Loads a CA bundle (PEM) to verify backends with. */
export const certificateAuthority = (file: string) => readFile(file)

/** What the ClientHello said, and every byte read to find it out (to be replayed). */
export interface Hello {
  readonly serverName: string | undefined
  readonly prefix: Buffer
}

/**
 * Reads from a client until its ClientHello is complete, at most `maxBytes`
 * and `timeoutMs`; the socket is left paused, and the bytes read are returned
 * to be replayed toward the backend or the TLS server.
 */
export const peekClientHello = (socket: Net.Socket, timeoutMs: number, maxBytes = ClientHello.defaultMaxBytes) =>
  readPrefix<Hello, ClientHelloError>(socket, timeoutMs, {
    parse: (buffered) => {
      const peek = ClientHello.peek(buffered, maxBytes)
      switch (peek._tag) {
        case "Hello":
          return { _tag: "Done", value: { serverName: peek.serverName, prefix: buffered }, used: buffered.length }
        case "Malformed":
          return { _tag: "Failed", error: new ClientHelloError({ reason: peek.reason }) }
        default:
          return { _tag: "More" }
      }
    },
    truncated: (bytes) => new ClientHelloError({ reason: `truncated after ${bytes} bytes` }),
    timedOut: (timeoutMs) => new ClientHelloError({ reason: `incomplete after ${timeoutMs}ms` })
  })

/**
 * A duplex over `socket` that first yields `prefix`, then what the socket
 * reads: the bytes a ClientHello peek took, given back to the TLS server.
 */
const replaying = (socket: Net.Socket, prefix: Buffer): Duplex => {
  const duplex = new Duplex({
    read: () => {
      socket.resume()
    },
    write: (chunk, encoding, callback) => {
      socket.write(chunk, encoding, callback)
    },
    final: (callback) => {
      socket.end(callback)
    },
    destroy: (error, callback) => {
      socket.destroy(error ?? undefined)
      callback(error)
    }
  })
  duplex.push(prefix)
  socket.on("data", (chunk: Buffer) => {
    if (!duplex.push(chunk)) socket.pause()
  })
  socket.once("end", () => duplex.push(null))
  socket.once("close", () => duplex.destroy())
  return duplex
}

/**
 * One line on why a handshake failed, with its code: OpenSSL's reason
 * (`http request (ERR_SSL_HTTP_REQUEST)`) rather than its multi-part error
 * string with file names; other errors by their message
 * (`unable to verify the first certificate (UNABLE_TO_VERIFY_LEAF_SIGNATURE)`).
 */
export const describeError = (error: Error): string => {
  const code = "code" in error && typeof error.code === "string" ? error.code : undefined
  const openSsl = "library" in error && "reason" in error && typeof error.reason === "string"
  const text = openSsl ? String(error.reason) : error.message.trim()
  return code === undefined || text.includes(code) ? text : `${text} (${code})`
}

/**
 * Completes a TLS handshake as the server over a client socket (with the
 * bytes a peek took replayed first), within `timeoutMs`.
 */
export const terminate = (
  socket: Net.Socket,
  prefix: Buffer | undefined,
  context: Tls.SecureContext,
  timeoutMs: number
) =>
  Effect.callback<Tls.TLSSocket, HandshakeError>((resume) => {
    const secure = new Tls.TLSSocket(prefix === undefined ? socket : replaying(socket, prefix), {
      isServer: true,
      secureContext: context
    })
    const fail = (reason: string) => {
      clearTimeout(timer)
      secure.destroy()
      socket.destroy()
      resume(Effect.fail(new HandshakeError({ reason })))
    }
    const onError = (error: Error) => fail(describeError(error))
    const onClose = () => fail("closed by the client")
    const timer = setTimeout(() => fail(`not done after ${timeoutMs}ms`), timeoutMs)
    secure.once("error", onError)
    secure.once("close", onClose)
    // A client that half-closes before the handshake is done will never finish it.
    socket.once("end", onClose)
    secure.once("end", onClose)
    secure.once("secure", () => {
      clearTimeout(timer)
      secure.off("error", onError)
      secure.off("close", onClose)
      socket.off("end", onClose)
      secure.off("end", onClose)
      secure.on("error", () => {}) // the relay watches from here
      resume(Effect.succeed(secure))
    })
    return Effect.sync(() => {
      clearTimeout(timer)
      secure.destroy()
    })
  })

/** Opens TLS toward a backend over a connected socket; verified against `ca` when given. */
export const originate = (
  socket: Net.Socket,
  serverName: string,
  ca: Buffer | undefined,
  timeoutMs: number
) =>
  Effect.callback<Tls.TLSSocket, HandshakeError>((resume) => {
    const secure = Tls.connect({
      socket,
      host: serverName, // the name (or IP) the certificate is checked against
      ...(ca === undefined ? { rejectUnauthorized: false } : { ca, rejectUnauthorized: true }),
      ...(Net.isIP(serverName) !== 0 ? {} : { servername: serverName })
    })
    const fail = (reason: string) => {
      clearTimeout(timer)
      secure.destroy()
      resume(Effect.fail(new HandshakeError({ reason: `with backend: ${reason}` })))
    }
    const onError = (error: Error) => fail(describeError(error))
    const timer = setTimeout(() => fail(`not done after ${timeoutMs}ms`), timeoutMs)
    secure.once("error", onError)
    secure.once("secureConnect", () => {
      clearTimeout(timer)
      secure.off("error", onError)
      secure.on("error", () => {})
      resume(Effect.succeed(secure))
    })
    return Effect.sync(() => {
      clearTimeout(timer)
      secure.destroy()
    })
  })
