/**
 * Preloaded (`node --expose-gc --import ./bench/probe.ts`) into the proxy in
 * the profiling pass only. With BENCH_PROBE_PORT set, a connection to
 * 127.0.0.1:BENCH_PROBE_PORT runs a full GC (when exposed) and gets
 * `process.memoryUsage()` as one JSON line. The server is unref'd, so it
 * never keeps the process alive. Worker threads (`--workers`) load it too:
 * only the main thread listens.
 */
import * as Net from "node:net"
import { isMainThread } from "node:worker_threads"

const port = Number(process.env["BENCH_PROBE_PORT"])
if (port && isMainThread) {
  const gc = (globalThis as { gc?: () => void }).gc
  Net.createServer((socket) => {
    gc?.()
    gc?.()
    socket.end(JSON.stringify(process.memoryUsage()) + "\n")
  }).listen(port, "127.0.0.1").unref()
}
