/**
 * Backend reads into one buffer that every backend socket shares (Node's
 * `onread`), instead of a fresh buffer per read. Each read is copied into a
 * chunk from a small pool and written on at once; the chunk goes back to the
 * pool when the write is done. When the other side cannot take more, the
 * callback stops the socket reading there and then.
 *
 * Two things follow. A connection whose client does not read holds one chunk
 * (32 KiB) of the backend's bytes, where `data` events would hold the pending
 * write plus one more read of up to 64 KiB. And moving bytes allocates no
 * memory outside the JS heap, so a bulk transfer does not drive the garbage
 * collector into a full collection every 64 MiB.
 *
 * @since 0.1.0
 */
import type * as Net from "node:net"
import type { BackendReads } from "../services/Dialer.ts"

/** The largest read, and the size of a chunk. */
const chunkSize = 32 * 1024

/**
 * The buffer every backend socket reads into. Reads run one at a time on the
 * event loop, and each is copied out in its callback before the next.
 */
const shared = Buffer.allocUnsafeSlow(chunkSize)

/** Chunks whose writes are done, ready for the next read. */
const free: Array<Buffer> = []

/** Free chunks kept beyond this many are left to the garbage collector (1 MiB). */
const maxFree = 32

const release = (chunk: Buffer): void => {
  if (free.length < maxFree) free.push(chunk)
}

/** One backend socket's reads: held (and the socket paused) until the relay says where they go. */
export class SharedBufferReads implements BackendReads {
  #to: Net.Socket | undefined
  /** Chunks written to `#to` whose writes are not done yet, oldest first (writes complete in order). */
  readonly #inFlight: Array<Buffer> = []
  /** Reads before the relay started, in order. */
  #early: Array<Buffer> | undefined

  readonly #written = (): void => {
    const chunk = this.#inFlight.shift()
    if (chunk !== undefined) release(chunk)
  }

  readonly onread: Net.OnReadOpts = {
    buffer: shared,
    // `false` stops the socket reading until it is resumed.
    callback: (bytes, buffer) => {
      if (this.#to === undefined) {
        ;(this.#early ??= []).push(Buffer.copyBytesFrom(buffer, 0, bytes))
        return false
      }
      const chunk = free.pop() ?? Buffer.allocUnsafeSlow(chunkSize)
      chunk.set(buffer.subarray(0, bytes))
      this.#inFlight.push(chunk)
      return this.#to.write(chunk.subarray(0, bytes), this.#written)
    }
  }

  into(from: Net.Socket, to: Net.Socket): void {
    this.#to = to
    let flowing = true
    if (this.#early !== undefined) {
      for (const chunk of this.#early) flowing = to.write(chunk)
      this.#early = undefined
    }
    to.on("drain", () => from.resume())
    // A socket dialled without `onread` (a dialer of an embedding app may ignore it) reads through `data` events.
    from.on("data", (chunk: Buffer) => {
      if (!to.write(chunk)) from.pause()
    })
    if (from.readableEnded) to.end()
    else from.on("end", () => to.end())
    if (flowing) from.resume()
  }
}
