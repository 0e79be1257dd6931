/**
 * Backend for the idle-memory workload: accepts connections, reads and
 * discards whatever arrives, and holds each open until its peer ends it.
 * `node bench/sink.ts PORT CONTROL_PORT`: a connection to CONTROL_PORT gets
 * the number of connections open now, as text, and is closed.
 */
import * as Net from "node:net"

const [port, controlPort] = process.argv.slice(2).map(Number)
if (!port || !controlPort) {
  console.error("usage: sink.ts PORT CONTROL_PORT")
  process.exit(2)
}
let open = 0
Net.createServer({ allowHalfOpen: true }, (socket) => {
  open++
  socket.on("error", () => {})
  socket.on("close", () => open--)
  socket.on("end", () => socket.end())
  socket.resume()
}).listen({ port, host: "127.0.0.1", backlog: 4096 })
Net.createServer((socket) => socket.end(String(open))).listen(controlPort, "127.0.0.1")

process.on("SIGTERM", () => process.exit(0))
process.on("SIGINT", () => process.exit(0))
