/**
 * The Node floor for the benchmark: the least a node:net proxy can do.
 * `node bench/pipe-proxy.ts LISTEN_PORT BACKEND_PORT [THREADS]` (both on
 * 127.0.0.1). Half-close passes through (allowHalfOpen, and `pipe` ends the
 * other side on 'end'); an error on either side destroys both. Same socket
 * options as the proxy under test (noDelay on both sides). With THREADS > 1,
 * that many worker threads each listen on the port (`reusePort`), as
 * `tcp-proxy --workers` does: the floor for Node on several cores.
 */
import * as Net from "node:net"
import { isMainThread, Worker, workerData } from "node:worker_threads"

const [listenPort, backendPort, threads = 1] = isMainThread ? process.argv.slice(2).map(Number) : workerData
if (!listenPort || !backendPort) {
  console.error("usage: pipe-proxy.ts LISTEN_PORT BACKEND_PORT [THREADS]")
  process.exit(2)
}

const serve = (reusePort: boolean) =>
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
  }).listen({ port: listenPort, host: "127.0.0.1", reusePort })

if (!isMainThread) serve(true)
else if (threads > 1) {
  for (let i = 0; i < threads; i++) new Worker(new URL(import.meta.url), { workerData: [listenPort, backendPort, threads] })
} else serve(false)

if (isMainThread) {
  process.on("SIGTERM", () => process.exit(0))
  process.on("SIGINT", () => process.exit(0))
}
