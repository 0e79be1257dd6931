/**
 * The Node floor for the benchmark: the least a node:net proxy can do.
 * `node bench/pipe-proxy.ts LISTEN_PORT BACKEND_PORT` (both on 127.0.0.1).
 * Half-close passes through (allowHalfOpen, and `pipe` ends the other side
 * on 'end'); an error on either side destroys both. Same socket options as
 * the proxy under test (noDelay on both sides).
 */
import * as Net from "node:net"

const [listenPort, backendPort] = process.argv.slice(2).map(Number)
if (!listenPort || !backendPort) {
  console.error("usage: pipe-proxy.ts LISTEN_PORT BACKEND_PORT")
  process.exit(2)
}

Net.createServer({ allowHalfOpen: true, noDelay: true }, (client) => {
  const backend = Net.connect({ host: "127.0.0.1", port: backendPort, allowHalfOpen: true, noDelay: true })
  const kill = () => {
    client.destroy()
    backend.destroy()
  }
  client.on("error", kill)
  backend.on("error", kill)
  client.pipe(backend)
  backend.pipe(client)
}).listen(listenPort, "127.0.0.1")

process.on("SIGTERM", () => process.exit(0))
process.on("SIGINT", () => process.exit(0))
