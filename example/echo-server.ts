/**
 * A tiny echo backend for the demo: `node example/echo-server.ts PORT NAME`.
 * Listens on 127.0.0.1:PORT (or `$HOST`:PORT, e.g. `HOST=0.0.0.0` in a
 * container) and echoes everything back with each line
 * prefixed by `[NAME] `, so a client can see which backend served it.
 * Ends its side when the client ends; SIGINT/SIGTERM close it with exit 0.
 */
import { createServer, type Socket } from "node:net"

const [portText = "", name = ""] = process.argv.slice(2)
const port = Number(portText)
if (!Number.isInteger(port) || port < 1 || port > 65535 || name === "") {
  console.error("usage: node example/echo-server.ts PORT NAME")
  process.exit(2)
}

const host = process.env["HOST"] ?? "127.0.0.1"
const prefix = Buffer.from(`[${name}] `)
const sockets = new Set<Socket>()

/** Echoes `socket` back to itself, prefixing the start of every line. */
const echo = (socket: Socket): void => {
  sockets.add(socket)
  socket.on("close", () => sockets.delete(socket))
  socket.on("error", () => {}) // a client vanishing is not our problem
  let atLineStart = true
  socket.on("data", (chunk: Buffer) => {
    const parts: Array<Buffer> = []
    for (let start = 0; start < chunk.length;) {
      const newline = chunk.indexOf(0x0a, start)
      const end = newline === -1 ? chunk.length : newline + 1
      if (atLineStart) parts.push(prefix)
      parts.push(chunk.subarray(start, end))
      atLineStart = newline !== -1
      start = end
    }
    if (!socket.write(Buffer.concat(parts))) {
      socket.pause()
      socket.once("drain", () => socket.resume())
    }
  })
  socket.on("end", () => socket.end())
}

const server = createServer({ allowHalfOpen: true }, echo)

server.on("error", (error: NodeJS.ErrnoException) => {
  console.error(`${name}: cannot listen on ${host}:${port}: ${error.code ?? error.message}`)
  process.exit(1)
})

server.listen({ host, port }, () => console.log(`${name} listening on ${host}:${port}`))

const stop = (): void => {
  server.close(() => process.exit(0))
  for (const socket of sockets) socket.destroy()
}
process.on("SIGINT", stop)
process.on("SIGTERM", stop)
