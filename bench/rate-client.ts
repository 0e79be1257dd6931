/**
 * Open-loop HTTP/1.1 load at a fixed rate, for the latency workload.
 * `node bench/rate-client.ts PORT RATE CONNECTIONS SECONDS` opens CONNECTIONS
 * keep-alive connections to 127.0.0.1:PORT, then sends `GET / HTTP/1.1` on a
 * fixed schedule: request i is due at start + i / RATE, for SECONDS. A timer
 * sends every request that is due (never waiting for a response: if every
 * connection still has one outstanding, the request is pipelined on the next
 * in turn), so a slow response does not delay the requests after it. Each
 * latency runs from the request's scheduled time to the last byte of its
 * response (Content-Length body). At the end it prints one JSON line:
 * requests, completed, errors, latency mean/p50/p99/max (ms), the send lag
 * (scheduled -> written, the client's own timer delay, included in the
 * latency), and the client's CPU. Exit 1 if a connection fails or closes.
 */
import * as Net from "node:net"
import { Worker } from "node:worker_threads"

const [port, rate, connections, seconds] = process.argv.slice(2).map(Number)
if (!port || !rate || !connections || !seconds) {
  console.error("usage: rate-client.ts PORT RATE CONNECTIONS SECONDS")
  process.exit(2)
}

/** Milliseconds on the monotonic clock, the same in the timer thread. */
const now = () => {
  const [s, ns] = process.hrtime()
  return s * 1e3 + ns / 1e6
}

const request = Buffer.from(`GET / HTTP/1.1\r\nHost: 127.0.0.1:${port}\r\n\r\n`, "latin1")
const total = Math.round(rate * seconds)
const interval = 1000 / rate
/** Start of the schedule (ms, `now()`); request i is due at start + i * interval. */
let start = 0
let sent = 0
/** The connection to try first for the next request (round robin). */
let cursor = 0
/** Latency (ms, scheduled -> response complete) of each completed request, in completion order. */
const latency = new Float64Array(total)
/** Send lag (ms, scheduled -> written) of request i. */
const lag = new Float64Array(total)
let completed = 0
let errors = 0
let pipelined = 0

interface Conn {
  readonly socket: Net.Socket
  /** Indices of the requests sent and not yet answered, oldest first. */
  readonly queue: Array<number>
  buffer: string
}
const conns: Array<Conn> = []

const finish = (error?: string) => {
  const done = Array.from(latency.subarray(0, completed)).sort((a, b) => a - b)
  const at = (q: number) => done.length === 0 ? NaN : done[Math.min(done.length - 1, Math.floor(q * done.length))]!
  const mean = (values: ArrayLike<number>, n: number) => {
    let sum = 0
    for (let i = 0; i < n; i++) sum += values[i]!
    return n === 0 ? NaN : sum / n
  }
  const lags = Array.from(lag.subarray(0, sent)).sort((a, b) => a - b)
  const cpu = process.cpuUsage()
  const round = (n: number) => Number.isFinite(n) ? +n.toFixed(4) : null
  console.log(JSON.stringify({
    requests: sent,
    completed,
    errors,
    pipelined,
    seconds: round(start === 0 ? NaN : (now() - start) / 1000),
    meanMs: round(mean(done, done.length)),
    p50Ms: round(at(0.5)),
    p99Ms: round(at(0.99)),
    maxMs: round(done.at(-1) ?? NaN),
    lagMeanMs: round(mean(lags, lags.length)),
    lagP99Ms: round(lags.length === 0 ? NaN : lags[Math.floor(0.99 * lags.length)]!),
    cpuMs: round((cpu.user + cpu.system) / 1000),
    ...(error === undefined ? {} : { error })
  }))
  for (const conn of conns) conn.socket.destroy()
  process.exit(error === undefined ? 0 : 1)
}

/** Completes as many responses as `conn.buffer` holds (status line, headers, Content-Length body). */
const onData = (conn: Conn, chunk: string) => {
  conn.buffer += chunk
  for (;;) {
    const head = conn.buffer.indexOf("\r\n\r\n")
    if (head < 0) return
    const length = Number(/\r\ncontent-length:\s*(\d+)/i.exec(conn.buffer.slice(0, head))?.[1] ?? 0)
    const end = head + 4 + length
    if (conn.buffer.length < end) return
    const ok = conn.buffer.startsWith("HTTP/1.1 2")
    conn.buffer = conn.buffer.slice(end)
    const i = conn.queue.shift()
    if (i === undefined) return finish("response without a request")
    if (ok) latency[completed++] = now() - (start + i * interval)
    else errors++
    if (sent === total && conn.queue.length === 0 && conns.every((c) => c.queue.length === 0)) finish()
  }
}

/** Sends every request due by now, each on the next connection in turn with nothing outstanding (else pipelined). */
const tick = () => {
  const t = now()
  while (sent < total && start + sent * interval <= t) {
    let k = 0
    while (k < conns.length && conns[(cursor + k) % conns.length]!.queue.length > 0) k++
    if (k === conns.length) {
      k = 0
      pipelined++
    }
    const conn = conns[(cursor + k) % conns.length]!
    cursor = (cursor + k + 1) % conns.length
    conn.queue.push(sent)
    conn.socket.write(request)
    lag[sent] = now() - (start + sent * interval)
    sent++
  }
  if (sent === total) setTimeout(() => finish("responses missing after 5 s"), 5000).unref()
}

/**
 * The timer: a thread that sleeps in Atomics.wait until 0.1 ms before the
 * next request is due, spins the rest (the futex wakes ~0.08 ms late), and
 * posts, which wakes the event loop at once: the send lag is ~0.02 ms. A
 * setTimeout fires on the event loop's millisecond clock, ~0.6 ms late on
 * average, more than a proxy adds; sleeping without the spin, ~0.09 ms.
 */
const clock = new Worker(
  `const { parentPort } = require("node:worker_threads")
  const now = () => { const [s, ns] = process.hrtime(); return s * 1e3 + ns / 1e6 }
  const cell = new Int32Array(new SharedArrayBuffer(4))
  parentPort.postMessage("ready")
  parentPort.once("message", ({ start, interval, total }) => {
    for (let i = 0; i < total;) {
      const due = start + i * interval
      const wait = due - now() - 0.1
      if (wait > 0) Atomics.wait(cell, 0, 0, wait)
      while (now() < due) {}
      parentPort.postMessage(0)
      const t = now()
      while (i < total && start + i * interval <= t) i++
    }
  })`,
  { eval: true }
)
clock.unref()
clock.once("message", () => {
  clock.on("message", tick)
  connect()
})

/** Opens the connections once the timer thread runs; the schedule starts when all are open. */
const connect = () => {
  let open = 0
  for (let c = 0; c < connections; c++) {
    const socket = Net.connect({ host: "127.0.0.1", port, noDelay: true }, () => {
      if (++open === connections) {
        start = now() + 5
        clock.postMessage({ start, interval, total })
      }
    })
    const conn: Conn = { socket, queue: [], buffer: "" }
    socket.setEncoding("latin1")
    socket.on("data", (chunk: string) => onData(conn, chunk))
    socket.on("error", (error: NodeJS.ErrnoException) => finish(`connection: ${error.code ?? error.message}`))
    socket.on("close", () => finish("connection closed by the server"))
    conns.push(conn)
  }
}
