/**
 * Reads into one buffer that every relayed socket shares (Node's `onread`),
 * instead of a fresh buffer per read. Each read is copied into a chunk from a
 * small pool and written on at once; the chunk goes back to the pool once
 * its write is done. When the other side cannot take more, the callback
 * stops the socket reading there and then. Backend sockets are dialled this
 * way; a plain client socket, which `net.Server` creates without `onread`,
 * is switched over before its backend is dialled ({@link adopt}).
 *
 * Writes to the proxy's own sockets (a one-byte high-water mark) take no
 * callback: Node schedules a tick for every write whose callback it has to
 * call, and a connection that carries one request and one response would
 * pay two. With that mark a write that cannot complete at once always ends
 * in `drain`, so a chunk goes back when the other side holds none of its
 * bytes: at once when the write went straight to the kernel, else when the
 * other side drains. Other streams (a TLS session) report each write's end
 * through its callback.
 *
 * Two things follow. A connection whose peer does not read holds one chunk
 * (32 KiB) of the other side's bytes, where `data` events would hold the
 * pending write plus one more read of up to 64 KiB. And moving bytes
 * allocates no memory outside the JS heap, so a bulk transfer does not drive
 * the garbage collector into a full collection every 64 MiB.
 *
 * @since 0.1.0
 */
import * as Net from "node:net"
import type { BackendReads } from "../services/Dialer.ts"
import * as Stalls from "./Stalls.ts"

/** The largest read, and the size of a chunk. */
const chunkSize = 32 * 1024

/**
 * The buffer every backend socket reads into. Reads run one at a time on the
 * event loop, and each is copied out in its callback before the next.
 */
const shared = Buffer.allocUnsafeSlow(chunkSize)

/** Chunks whose writes are done, ready for the next read. */
const free: Array<Buffer> = []

/**
 * Reads before the relay starts are held, and the socket reads on while they
 * come to less than this: a first request rarely needs more, and a socket
 * that reads on needs no resuming (a tick) when the relay starts. Past it,
 * the socket stops: a connection holds less than this and one chunk.
 */
const earlyReadOn = 4 * 1024

/** Free chunks kept beyond this many are left to the garbage collector (1 MiB). */
const maxFree = 32

const release = (chunk: Buffer): void => {
  if (free.length < maxFree) free.push(chunk)
}

/** One socket's reads: held (past a few KiB the socket stops reading) until the relay says where they go. */
export class SharedBufferReads implements BackendReads, Stalls.Stoppable {
  #from: Net.Socket | undefined
  #to: Net.Socket | undefined
  /** Whether `#from` has stopped reading until `#to` drains. */
  #waiting = false
  /**
   * Whether `#to` has a one-byte high-water mark: every write that waits
   * ends in `drain`, and writes need no callback.
   */
  #drains = false
  /** Chunks whose bytes `#to` may still hold, oldest first (writes complete in order). */
  readonly #inFlight: Array<Buffer> = []
  /**
   * The callback of writes to a stream that reports their end that way
   * (not the proxy's own sockets): the oldest chunk in flight is done.
   * Made when such a stream is the other side.
   */
  #written: (() => void) | undefined
  /** The `drain` listener on the other side: made, and added, the first time a write waits. */
  #onDrain: (() => void) | undefined
  /** Reads before the relay started, in order. */
  #early: Array<Buffer> | undefined
  /** How many bytes `#early` holds. */
  #earlyBytes = 0
  /** Whether the socket stopped reading to hold what it read before the relay started. */
  #holding: boolean

  /** `early`: what a socket read before it read this way; it stopped reading to hold that. */
  constructor(early?: Array<Buffer>) {
    this.#early = early
    this.#holding = early !== undefined
  }

  /** Gives the chunks in flight back to the pool once `to` holds no bytes: all its writes are done. */
  #settle(to: Net.Socket): void {
    if (to.writableLength > 0) return
    for (const chunk of this.#inFlight) release(chunk)
    this.#inFlight.length = 0
  }

  // `false` stops the socket reading until it is resumed.
  readonly #read = (bytes: number, buffer: Uint8Array): boolean => {
    const to = this.#to
    if (to === undefined) {
      ;(this.#early ??= []).push(Buffer.copyBytesFrom(buffer, 0, bytes))
      this.#earlyBytes += bytes
      if (this.#earlyBytes < earlyReadOn) return true
      this.#holding = true
      return false
    }
    const chunk = free.pop() ?? Buffer.allocUnsafeSlow(chunkSize)
    chunk.set(buffer.subarray(0, bytes))
    this.#inFlight.push(chunk)
    const view = chunk.subarray(0, bytes)
    const flowing = this.#drains ? to.write(view) : to.write(view, this.#written)
    // With nothing pending, the write went to the kernel whole, and so did every earlier one.
    if (this.#drains) this.#settle(to)
    if (flowing) return true
    this.#wait(to)
    return false
  }

  /** Stops until `to` drains; most connections never wait, and never pay for the listener. */
  #wait(to: Net.Socket): void {
    this.#waiting = true
    if (this.#onDrain === undefined) {
      this.#onDrain = () => this.#drained(to)
      to.on("drain", this.#onDrain)
    }
    Stalls.watch(this)
  }

  #drained(to: Net.Socket): void {
    this.#waiting = false
    if (this.#drains) this.#settle(to)
    this.#from?.resume()
  }

  get stopped(): Net.Socket | undefined {
    return this.#waiting ? this.#from : undefined
  }

  /**
   * Passes the end on. When `to` is a TCP socket of the proxy's whose peer
   * has ended too, and Node holds none of its bytes, closing it sends the
   * same FIN as a shutdown would (the kernel still delivers what it holds,
   * and nothing is left unread to turn the close into a reset): one system
   * call fewer, and no round of the event loop waiting for the shutdown.
   */
  readonly #ended = (): void => {
    const to = this.#to
    if (to === undefined) return
    if (this.#drains && to.readableEnded && to.writableLength === 0) to.destroy()
    else to.end()
    // The other way round: `from`'s own end, passed on when its other side ended first, may still wait for its
    // shutdown (Node runs it a round of the event loop later). Both ways are done now, and closing sends that FIN.
    const from = this.#from
    if (from !== undefined && from.writableEnded && from.writableLength === 0 && !from.destroyed) from.destroy()
  }

  /** The options that make a socket read this way; made when asked, so that an open connection does not keep them. */
  get onread(): Net.OnReadOpts {
    return { buffer: shared, callback: this.#read }
  }

  into(from: Net.Socket, to: Net.Socket): void {
    this.#from = from
    this.#to = to
    this.#drains = to.writableHighWaterMark <= 1
    if (!this.#drains) {
      this.#written = () => {
        const chunk = this.#inFlight.shift()
        if (chunk !== undefined) release(chunk)
      }
    }
    let flowing = true
    // A socket that held enough early reads stopped reading (a paused one was stopped by its reader).
    const stopped = this.#holding || from.isPaused()
    if (this.#early !== undefined) {
      for (const chunk of this.#early) flowing = to.write(chunk)
      this.#early = undefined
    }
    // A socket dialled without `onread` (a dialer of an embedding app may ignore it) reads through `data` events.
    if (onreadKeys === undefined || Reflect.get(from, onreadKeys.callback) !== this.#read) {
      from.on("data", (chunk: Buffer) => {
        if (to.write(chunk)) return
        from.pause()
        this.#wait(to)
      })
    }
    if (from.readableEnded) this.#ended()
    else from.on("end", this.#ended)
    // A socket still reading reads on, and its end comes without resuming it (which would cost a tick).
    if (!flowing) this.#wait(to)
    else if (stopped) from.resume()
  }
}

/** A stream handle that can read into a buffer of the caller's (what `onread` sets up). */
interface UserBufferHandle {
  readonly useUserBuffer: (buffer: Uint8Array) => void
}

const isUserBufferHandle = (handle: unknown): handle is UserBufferHandle =>
  typeof handle === "object" && handle !== null && "useUserBuffer" in handle &&
  typeof handle.useUserBuffer === "function"

/**
 * The keys under which a socket keeps its `onread` buffer and callback: Node
 * reads them on every read, and keeps them private, so they are found once
 * on a socket made with the options. Undefined when this Node keeps them
 * some other way.
 */
const onreadKeys = ((): { readonly buffer: symbol; readonly callback: symbol } | undefined => {
  const callback = () => true
  const probe = new Net.Socket({ onread: { buffer: shared, callback } })
  const keys = Object.getOwnPropertySymbols(probe)
  probe.destroy()
  const buffer = keys.find((key) => Reflect.get(probe, key) === shared)
  const callbackKey = keys.find((key) => Reflect.get(probe, key) === callback)
  return buffer === undefined || callbackKey === undefined ? undefined : { buffer, callback: callbackKey }
})()

/**
 * Switches a socket Node made without `onread` (an accepted client) to reads
 * into the shared buffer, from its next read on; what it has read and not yet
 * delivered comes first. Its end, byte count and idle timer work as before.
 * Undefined, and the socket left as it was, when this Node offers no way to
 * do it: the socket then reads through `data` events.
 */
export const adopt = (socket: Net.Socket): SharedBufferReads | undefined => {
  const handle: unknown = Reflect.get(socket, "_handle")
  if (onreadKeys === undefined || !isUserBufferHandle(handle)) return undefined
  let early: Array<Buffer> | undefined
  for (let chunk: Buffer | null = socket.read(); chunk !== null; chunk = socket.read()) (early ??= []).push(chunk)
  const reads = new SharedBufferReads(early)
  Reflect.set(socket, onreadKeys.buffer, shared)
  Reflect.set(socket, onreadKeys.callback, reads.onread.callback)
  handle.useUserBuffer(shared)
  return reads
}
