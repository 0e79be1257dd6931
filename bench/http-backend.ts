/**
 * Fallback HTTP backend when nginx is not installed: `node bench/http-backend.ts PORT`
 * answers every request with a small keep-alive `200 hello\n`. It costs more
 * CPU than nginx, so results with it are lower across the board.
 */
import * as Http from "node:http"

const port = Number(process.argv[2])
if (!port) {
  console.error("usage: http-backend.ts PORT")
  process.exit(2)
}
const body = Buffer.from("hello\n")
Http.createServer({ keepAliveTimeout: 60_000 }, (_request, response) => {
  response.writeHead(200, { "Content-Type": "text/plain", "Content-Length": body.length })
  response.end(body)
}).listen({ port, host: "127.0.0.1", backlog: 4096 })

process.on("SIGTERM", () => process.exit(0))
process.on("SIGINT", () => process.exit(0))
