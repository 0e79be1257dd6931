/**
 * A minimal interactive client, for machines without `nc`:
 * `node example/client.ts [HOST:PORT]` (default 127.0.0.1:4000).
 * Pipes stdin to the socket and the socket to stdout, half-closes the
 * socket when stdin ends, and exits when the socket closes.
 */
import { connect } from "node:net"

const target = process.argv[2] ?? "127.0.0.1:4000"
const match = /^\[?([^\]]*)\]?:(\d+)$/.exec(target)
if (match === null) {
  console.error("usage: node example/client.ts [HOST:PORT]")
  process.exit(2)
}
const host = match[1] || "127.0.0.1"
const port = Number(match[2])

const socket = connect({ host, port, allowHalfOpen: true })

socket.on("connect", () => {
  console.error(`connected to ${target}; type lines, Ctrl-D to finish`)
  process.stdin.pipe(socket) // ends the socket's writable side (half-close) when stdin ends
})
socket.pipe(process.stdout, { end: false })
socket.on("error", (error: NodeJS.ErrnoException) => {
  console.error(`${target}: ${error.code ?? error.message}`)
  process.exitCode = 1
})
socket.on("close", () => process.exit())
