/**
 * The soak's backend: `node bench/soak-backend.ts PORT` on 127.0.0.1.
 *
 * - Echo: every byte a connection sends comes back unchanged, and when the
 *   client half-closes, the echo half-closes too once everything is sent.
 * - Large transfer: a connection whose first line is `BULK <bytes> <seed>`
 *   gets `<bytes>` bytes of the deterministic stream for `<seed>`
 *   (bench/soak-stream.ts), sent with backpressure, and then the end of the
 *   stream; whatever else it sends is read and discarded.
 *
 * The mode is decided on the first bytes: anything that cannot be the start
 * of `BULK ` is echoed at once.
 */
import * as Net from "node:net"
import { chunkSize, keystream } from "./soak-stream.ts"

const port = Number(process.argv[2])
if (!port) {
  console.error("usage: soak-backend.ts PORT")
  process.exit(2)
}

const PREFIX = Buffer.from("BULK ")
const MAX_LINE = 256

const bulk = (socket: Net.Socket, total: number, seed: string) => {
  const next = keystream(seed)
  let left = total
  const pump = () => {
    while (left > 0) {
      const n = Math.min(left, chunkSize)
      left -= n
      if (!socket.write(next(n))) {
        socket.once("drain", pump)
        return
      }
    }
    socket.end()
  }
  pump()
}

Net.createServer({ allowHalfOpen: true, noDelay: true }, (socket) => {
  socket.on("error", () => socket.destroy())
  let head: Buffer = Buffer.alloc(0)
  let decided = false

  const echo = () => {
    decided = true
    socket.off("data", onData)
    if (head.length > 0) socket.write(head)
    socket.pipe(socket)
  }

  const onData = (chunk: Buffer) => {
    head = head.length === 0 ? chunk : Buffer.concat([head, chunk])
    const n = Math.min(head.length, PREFIX.length)
    if (!head.subarray(0, n).equals(PREFIX.subarray(0, n))) return echo()
    const newline = head.indexOf(10)
    if (newline < 0) {
      if (head.length > MAX_LINE) echo()
      return
    }
    const match = /^BULK (\d+) (\S+)\r?$/.exec(head.subarray(0, newline).toString("latin1"))
    if (match === null) return echo()
    decided = true
    socket.off("data", onData)
    socket.resume()
    bulk(socket, Number(match[1]), match[2]!)
  }

  socket.on("data", onData)
  // The client ended before its first bytes told the mode: echo what came.
  socket.on("end", () => {
    if (!decided) {
      decided = true
      socket.end(head)
    }
  })
}).listen({ port, host: "127.0.0.1", backlog: 4096 })

process.on("SIGTERM", () => process.exit(0))
process.on("SIGINT", () => process.exit(0))
