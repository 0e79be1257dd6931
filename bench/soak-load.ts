/**
 * The soak's client load, all through the proxy on 127.0.0.1:
 *
 * - keep-alive: `keepalive` long-lived connections, each sending one framed
 *   message of random length (1 B to 64 KiB, log-uniform) at a time, waiting
 *   for its whole echo, pausing 20-80 ms, and so on. A frame is
 *   `"KA" connId:u32 seq:u32 len:u32 payload crc32:u32`; every echoed byte
 *   is compared with what was sent, so a byte of another stream (cross-talk),
 *   a changed, lost or extra byte is caught at its offset. A connection that
 *   fails is replaced by a new one (a new connId).
 * - churn: `churnRate` short connections a second: connect, send one framed
 *   message (`"CH" id:u32 len:u32 payload crc32:u32`, 16 B to 2 KiB) and
 *   half-close, read the whole echo and its end, close.
 * - bulk: every `bulkEveryMs`, a connection asks `BULK <bytes> <seed>` and
 *   checks every byte of the answer against the recomputed stream, and that
 *   it ends exactly after `<bytes>` bytes.
 *
 * A connection error or an early end is a *failure* (it may be expected: the
 * soak decides, from the proxy's access log, whether the connection was on a
 * backend that was killed); a byte that differs from what was sent (or from
 * the stream) is a *corruption*, never expected. Corruption is classified as
 * cross-talk when the wrong bytes carry another connection's frame header.
 */
import * as Crypto from "node:crypto"
import * as Net from "node:net"
import * as Zlib from "node:zlib"
import { keystream } from "./soak-stream.ts"

export type Kind = "keepalive" | "churn" | "bulk"

export interface Failure {
  readonly kind: Kind
  readonly id: number
  /** The client's port toward the proxy (the access log's `client=`); none when it never connected. */
  readonly localPort: number | undefined
  /** When the client saw it (ms since the epoch). */
  readonly at: number
  readonly reason: string
}

export interface Corruption extends Failure {
  readonly crossTalk: boolean
}

export interface LoadOptions {
  readonly port: number
  readonly keepalive: number
  readonly churnRate: number
  readonly bulkBytes: number
  readonly bulkEveryMs: number
}

export interface LoadStats {
  /** Connections that reached `connect`: each one the proxy must count and log. */
  connected: number
  /** Connect attempts that failed before `connect`. */
  connectFailed: number
  keepalive: { connections: number; messages: number; bytes: number }
  churn: { started: number; verified: number; bytes: number; skipped: number }
  bulk: { started: number; verified: number; bytes: number; skipped: number }
}

const STALL_MS = 30_000
const CHURN_TIMEOUT_MS = 20_000
const MAX_CHURN_IN_FLIGHT = 200

const pool = Crypto.randomBytes((1 << 20) + (1 << 16))
const randomInt = (lo: number, hi: number) => lo + Math.floor(Math.random() * (hi - lo + 1))
/** Log-uniform in [lo, hi]: mostly small messages, some large. */
const logUniform = (lo: number, hi: number) => Math.min(hi, Math.floor(Math.exp(Math.log(lo) + Math.random() * (Math.log(hi + 1) - Math.log(lo)))))

/** A frame: 2-byte tag, id, (seq for KA), len, payload from the random pool at a random offset, crc32. */
const frame = (tag: "KA" | "CH", id: number, seq: number, len: number): Buffer => {
  const headerLength = tag === "KA" ? 14 : 10
  const buffer = Buffer.allocUnsafe(headerLength + len + 4)
  buffer.write(tag, 0, "latin1")
  buffer.writeUInt32BE(id, 2)
  if (tag === "KA") {
    buffer.writeUInt32BE(seq, 6)
    buffer.writeUInt32BE(len, 10)
  } else {
    buffer.writeUInt32BE(len, 6)
  }
  const offset = randomInt(0, pool.length - len)
  pool.copy(buffer, headerLength, offset, offset + len)
  buffer.writeUInt32BE(Zlib.crc32(buffer.subarray(0, headerLength + len)), headerLength + len)
  return buffer
}

/** Another connection's frame header in `data` (cross-talk rather than plain corruption)? */
const foreignHeader = (data: Buffer, ownId: number, maxId: number): number | undefined => {
  for (let i = data.indexOf("KA"); i >= 0; i = data.indexOf("KA", i + 1)) {
    if (i + 6 > data.length) break
    const id = data.readUInt32BE(i + 2)
    if (id !== ownId && id > 0 && id < maxId) return id
  }
  for (let i = data.indexOf("CH"); i >= 0; i = data.indexOf("CH", i + 1)) {
    if (i + 6 > data.length) break
    const id = data.readUInt32BE(i + 2)
    if (id !== ownId && id > 0 && id < maxId) return id
  }
  return undefined
}

const firstDifference = (a: Buffer, b: Buffer): number => {
  const n = Math.min(a.length, b.length)
  for (let i = 0; i < n; i++) if (a[i] !== b[i]) return i
  return n
}

const hex = (data: Buffer) => data.subarray(0, 16).toString("hex")

const sleep = (ms: number) => new Promise<void>((resolve) => setTimeout(resolve, ms))

export class Load {
  readonly stats: LoadStats = {
    connected: 0,
    connectFailed: 0,
    keepalive: { connections: 0, messages: 0, bytes: 0 },
    churn: { started: 0, verified: 0, bytes: 0, skipped: 0 },
    bulk: { started: 0, verified: 0, bytes: 0, skipped: 0 }
  }
  readonly failures: Array<Failure> = []
  readonly corruptions: Array<Corruption> = []
  private nextId = 1
  private stopping = false
  private churnInFlight = 0
  private bulkInFlight = 0
  private readonly sockets = new Set<Net.Socket>()
  private readonly tasks = new Set<Promise<void>>()
  private readonly timers: Array<NodeJS.Timeout> = []

  readonly options: LoadOptions

  constructor(options: LoadOptions) {
    this.options = options
  }

  start(): void {
    for (let slot = 0; slot < this.options.keepalive; slot++) {
      this.track((async () => {
        // Spread the first messages over a second.
        await sleep(randomInt(0, 1000))
        while (!this.stopping) {
          await this.keepaliveConnection()
          if (!this.stopping) await sleep(200)
        }
      })())
    }
    if (this.options.churnRate > 0) {
      this.timers.push(setInterval(() => this.churnOne(), 1000 / this.options.churnRate))
    }
    if (this.options.bulkBytes > 0) {
      // Off the soak's 10 s sampling beat (with the default 15 s period: 7.5 s, 22.5 s, 37.5 s ...).
      this.timers.push(setTimeout(() => {
        if (this.stopping) return
        this.bulkOne()
        this.timers.push(setInterval(() => this.bulkOne(), this.options.bulkEveryMs))
      }, 7_500))
    }
  }

  /** Stops starting work, lets what runs finish (keep-alive connections end cleanly), at most `timeoutMs`. */
  async stop(timeoutMs: number): Promise<void> {
    this.stopping = true
    for (const timer of this.timers) clearInterval(timer)
    const deadline = Date.now() + timeoutMs
    while (this.tasks.size > 0 && Date.now() < deadline) {
      await Promise.race([Promise.all([...this.tasks]), sleep(Math.max(0, deadline - Date.now()))])
    }
    for (const socket of this.sockets) socket.destroy(new Error(`still open ${timeoutMs} ms after the load stopped`))
    await Promise.all([...this.tasks])
  }

  private track(task: Promise<void>): void {
    this.tasks.add(task)
    void task.finally(() => this.tasks.delete(task))
  }

  private connect(): Net.Socket {
    const socket = Net.connect({ host: "127.0.0.1", port: this.options.port, noDelay: true })
    this.sockets.add(socket)
    socket.once("close", () => this.sockets.delete(socket))
    return socket
  }

  private keepaliveConnection(): Promise<void> {
    return new Promise((resolve) => {
      const id = this.nextId++
      const socket = this.connect()
      let localPort: number | undefined
      let connected = false
      let expected: Buffer | undefined
      let offset = 0
      let seq = 0
      let verified = 0
      let closing = false
      let done = false
      let lastProgress = Date.now()
      let pause: NodeJS.Timeout | undefined

      const finish = () => {
        if (done) return
        done = true
        clearInterval(watchdog)
        clearTimeout(pause)
        resolve()
      }
      const fail = (reason: string) => {
        if (done) return
        if (!connected) this.stats.connectFailed++
        this.failures.push({ kind: "keepalive", id, localPort, at: Date.now(), reason: `${reason} (message ${seq}, ${verified} bytes verified on this connection)` })
        socket.destroy()
        finish()
      }
      const corrupt = (reason: string, data: Buffer) => {
        if (done) return
        const other = foreignHeader(data, id, this.nextId)
        this.corruptions.push({
          kind: "keepalive",
          id,
          localPort,
          at: Date.now(),
          crossTalk: other !== undefined,
          reason: `${reason}${other !== undefined ? `; carries connection ${other}'s frame` : ""}`
        })
        socket.destroy()
        finish()
      }
      const send = () => {
        if (this.stopping) {
          closing = true
          lastProgress = Date.now()
          socket.end()
          return
        }
        expected = frame("KA", id, seq++, logUniform(1, 65536))
        offset = 0
        lastProgress = Date.now()
        socket.write(expected)
      }
      const watchdog = setInterval(() => {
        if (Date.now() - lastProgress > STALL_MS && (expected !== undefined || closing)) {
          fail(`stalled: no byte for ${STALL_MS / 1000} s ${closing ? "waiting for the end of the echo" : "waiting for the echo"}`)
        }
      }, 5_000)

      socket.on("connect", () => {
        connected = true
        localPort = socket.localPort
        this.stats.connected++
        this.stats.keepalive.connections++
        send()
      })
      socket.on("data", (chunk: Buffer) => {
        if (expected === undefined) {
          return corrupt(`${chunk.length} bytes arrived with no message outstanding: ${hex(chunk)}...`, chunk)
        }
        const want = expected.subarray(offset, offset + chunk.length)
        if (chunk.length > expected.length - offset || !chunk.equals(want)) {
          const at = firstDifference(chunk, want)
          return corrupt(
            at < want.length
              ? `message ${seq - 1} byte ${offset + at} of ${expected.length}: got ${hex(chunk.subarray(at))}... expected ${hex(want.subarray(at))}...`
              : `message ${seq - 1}: ${chunk.length - want.length} bytes beyond its ${expected.length}: ${hex(chunk.subarray(at))}...`,
            chunk
          )
        }
        offset += chunk.length
        verified += chunk.length
        this.stats.keepalive.bytes += chunk.length
        lastProgress = Date.now()
        if (offset === expected.length) {
          this.stats.keepalive.messages++
          expected = undefined
          pause = setTimeout(send, randomInt(20, 80))
        }
      })
      socket.on("end", () => {
        if (closing) return // the echo of our end: clean; `close` follows
        fail(expected === undefined ? "early close (idle)" : `early close after ${offset} of ${expected.length} bytes of the echo`)
      })
      socket.on("error", (error: NodeJS.ErrnoException) => fail(`error ${error.code ?? error.message}`))
      socket.on("close", () => (closing ? finish() : fail("closed")))
    })
  }

  private churnOne(): void {
    if (this.stopping) return
    if (this.churnInFlight >= MAX_CHURN_IN_FLIGHT) {
      this.stats.churn.skipped++
      return
    }
    this.churnInFlight++
    this.stats.churn.started++
    this.track(new Promise<void>((resolve) => {
      const id = this.nextId++
      const message = frame("CH", id, 0, logUniform(16, 2048))
      const socket = this.connect()
      let localPort: number | undefined
      let connected = false
      let offset = 0
      let done = false
      const finish = () => {
        if (done) return
        done = true
        clearTimeout(timer)
        this.churnInFlight--
        resolve()
      }
      const fail = (reason: string) => {
        if (done) return
        if (!connected) this.stats.connectFailed++
        this.failures.push({ kind: "churn", id, localPort, at: Date.now(), reason: `${reason} (${offset} of ${message.length} bytes echoed)` })
        socket.destroy()
        finish()
      }
      const timer = setTimeout(() => fail(`no complete echo within ${CHURN_TIMEOUT_MS / 1000} s`), CHURN_TIMEOUT_MS)
      socket.on("connect", () => {
        connected = true
        localPort = socket.localPort
        this.stats.connected++
        socket.end(message)
      })
      socket.on("data", (chunk: Buffer) => {
        const want = message.subarray(offset, offset + chunk.length)
        if (chunk.length > message.length - offset || !chunk.equals(want)) {
          if (done) return
          const at = firstDifference(chunk, want)
          const other = foreignHeader(chunk, id, this.nextId)
          this.corruptions.push({
            kind: "churn",
            id,
            localPort,
            at: Date.now(),
            crossTalk: other !== undefined,
            reason: `${at < want.length ? `byte ${offset + at} of ${message.length}: got ${hex(chunk.subarray(at))}... expected ${hex(want.subarray(at))}...` : `${chunk.length - want.length} bytes beyond the ${message.length} sent`}${other !== undefined ? `; carries connection ${other}'s frame` : ""}`
          })
          socket.destroy()
          finish()
          return
        }
        offset += chunk.length
      })
      socket.on("end", () => {
        if (offset === message.length) {
          this.stats.churn.verified++
          this.stats.churn.bytes += offset
        } else {
          fail("early close")
        }
      })
      socket.on("error", (error: NodeJS.ErrnoException) => fail(`error ${error.code ?? error.message}`))
      socket.on("close", () => (offset === message.length ? finish() : fail("closed")))
    }))
  }

  private bulkOne(): void {
    if (this.stopping) return
    if (this.bulkInFlight > 0) {
      this.stats.bulk.skipped++
      return
    }
    this.bulkInFlight++
    this.stats.bulk.started++
    this.track(new Promise<void>((resolve) => {
      const id = this.nextId++
      const seed = `${id}-${Crypto.randomBytes(6).toString("hex")}`
      const total = this.options.bulkBytes
      const next = keystream(seed)
      const socket = this.connect()
      let localPort: number | undefined
      let connected = false
      let received = 0
      let done = false
      let lastProgress = Date.now()
      const finish = () => {
        if (done) return
        done = true
        clearInterval(watchdog)
        this.bulkInFlight--
        resolve()
      }
      const fail = (reason: string) => {
        if (done) return
        if (!connected) this.stats.connectFailed++
        this.failures.push({ kind: "bulk", id, localPort, at: Date.now(), reason: `${reason} (${received} of ${total} bytes verified)` })
        socket.destroy()
        finish()
      }
      const watchdog = setInterval(() => {
        if (Date.now() - lastProgress > STALL_MS) fail(`stalled: no byte for ${STALL_MS / 1000} s`)
      }, 5_000)
      socket.on("connect", () => {
        connected = true
        localPort = socket.localPort
        this.stats.connected++
        socket.write(`BULK ${total} ${seed}\n`)
      })
      socket.on("data", (chunk: Buffer) => {
        if (done) return
        lastProgress = Date.now()
        const extra = received + chunk.length - total
        const mine = extra > 0 ? chunk.subarray(0, chunk.length - extra) : chunk
        const want = next(mine.length)
        if (!mine.equals(want) || extra > 0) {
          const at = firstDifference(mine, want)
          const other = foreignHeader(chunk.subarray(at), id, this.nextId)
          this.corruptions.push({
            kind: "bulk",
            id,
            localPort,
            at: Date.now(),
            crossTalk: other !== undefined,
            reason: `${at < want.length ? `byte ${received + at} of ${total}: got ${hex(mine.subarray(at))}... expected ${hex(want.subarray(at))}...` : `${extra} bytes beyond the ${total} asked for`}${other !== undefined ? `; carries connection ${other}'s frame` : ""}`
          })
          socket.destroy()
          finish()
          return
        }
        received += chunk.length
      })
      socket.on("end", () => {
        if (received === total) {
          this.stats.bulk.verified++
          this.stats.bulk.bytes += received
          socket.end()
        } else {
          fail("early close")
        }
      })
      socket.on("error", (error: NodeJS.ErrnoException) => fail(`error ${error.code ?? error.message}`))
      socket.on("close", () => (received === total ? finish() : fail("closed")))
    }))
  }
}
