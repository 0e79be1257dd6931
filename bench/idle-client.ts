/**
 * Holds idle connections open for the idle-memory workload.
 * `node bench/idle-client.ts PORT N [PARALLEL]` opens N connections to
 * 127.0.0.1:PORT (at most PARALLEL connecting at once), prints `open N` on
 * stdout, then holds them, sending nothing, until a line `close` arrives on
 * stdin (or stdin ends): it then destroys them all, prints `closed`, exits.
 * A connection that fails is reported as `error CODE` and the process exits 1.
 */
import * as Net from "node:net"
import * as Readline from "node:readline"

const [port, n, parallel = 100] = process.argv.slice(2).map(Number)
if (!port || !n) {
  console.error("usage: idle-client.ts PORT N [PARALLEL]")
  process.exit(2)
}
const sockets: Array<Net.Socket> = []
let started = 0
let connected = 0
let failed = false

const fail = (error: NodeJS.ErrnoException) => {
  if (failed) return
  failed = true
  console.log(`error ${error.code ?? error.message}`)
  for (const socket of sockets) socket.destroy()
  process.exit(1)
}

const next = () => {
  if (started >= n) return
  started++
  const socket = Net.connect({ host: "127.0.0.1", port }, () => {
    connected++
    if (connected === n) console.log(`open ${n}`)
    else next()
  })
  socket.on("error", fail)
  sockets.push(socket)
}
for (let i = 0; i < Math.min(parallel, n); i++) next()

const close = () => {
  for (const socket of sockets) socket.destroy()
  console.log("closed")
  process.exit(0)
}
const lines = Readline.createInterface({ input: process.stdin })
lines.on("line", (line) => {
  if (line.trim() === "close") close()
})
lines.on("close", close)
