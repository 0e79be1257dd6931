/**
 * The soak's deterministic pseudo-random byte stream, shared by the backend
 * (bench/soak-backend.ts, which sends it on `BULK <bytes> <seed>`) and the
 * client (bench/soak-load.ts, which recomputes it to check every byte).
 *
 * The stream is the AES-128-CTR keystream (key: the first 16 bytes of
 * SHA-256("soak-bulk:" + seed), counter from zero): the same seed always
 * gives the same bytes, different seeds unrelated ones, and OpenSSL makes it
 * at several GB/s, so generating 50 MB twice costs little CPU.
 */
import * as Crypto from "node:crypto"

const CHUNK = 64 * 1024
const zeros = Buffer.alloc(CHUNK)

/** A generator of the stream for `seed`: each call returns the next `n` bytes. */
export const keystream = (seed: string): (n: number) => Buffer => {
  const key = Crypto.createHash("sha256").update(`soak-bulk:${seed}`).digest().subarray(0, 16)
  const cipher = Crypto.createCipheriv("aes-128-ctr", key, Buffer.alloc(16))
  return (n) => cipher.update(n <= CHUNK ? zeros.subarray(0, n) : Buffer.alloc(n))
}

export const chunkSize = CHUNK
