/**
 * The README's dashboard screenshot: `npm run screenshot` (builds first).
 *
 * Starts the built proxy (dist/Main.js) on loopback with a default pool of
 * three backends and one SNI route of one, the admin endpoint and its write
 * API; runs a varying load through it for about 40 s (TLS hellos, which the
 * front door reads to pick a pool, answered by backends that take their time
 * and send a few dozen KiB back) with the dashboard open in headless
 * Chromium (CHROMIUM_PATH, else /usr/bin/chromium) at 1280x800; stops one
 * backend and drains another (with the page's button) on the way; and saves
 * the whole page, still under load, to docs/dashboard.png. Every process and socket it opens is closed at the end.
 */
import { spawn } from "node:child_process"
import * as Fs from "node:fs"
import * as Net from "node:net"
import * as Os from "node:os"
import * as Path from "node:path"
import * as Tls from "node:tls"
import { fileURLToPath } from "node:url"
import puppeteer from "puppeteer-core"

const root = Path.dirname(Path.dirname(fileURLToPath(import.meta.url)))
const chromium = process.env["CHROMIUM_PATH"] ?? "/usr/bin/chromium"
const output = Path.join(root, "docs", "dashboard.png")
const loadMs = 40_000
const token = "screenshot-token"

const sleep = (ms: number) => new Promise<void>((resolve) => setTimeout(resolve, ms))

/** A backend that answers a connection, after a while, with `size` bytes and then closes it. */
const backend = async (size: number, delayMs: number): Promise<{ readonly address: string; readonly server: Net.Server }> => {
  const sockets = new Set<Net.Socket>()
  const server = Net.createServer((socket) => {
    sockets.add(socket)
    socket.on("error", () => {})
    socket.on("close", () => sockets.delete(socket))
    socket.once("data", () => {
      setTimeout(() => socket.end(Buffer.alloc(size, 7)), delayMs * (0.5 + Math.random()))
    })
  })
  server.on("close", () => {
    for (const socket of sockets) socket.destroy()
  })
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve))
  const bound = server.address()
  return { address: `127.0.0.1:${bound !== null && typeof bound === "object" ? bound.port : 0}`, server }
}

/** One client connection: a TLS hello (naming `servername`, if given), done when the backend's answer ends it. */
const hello = (port: number, servername?: string) =>
  new Promise<void>((resolve) => {
    const socket = Tls.connect({ host: "127.0.0.1", port, ...(servername === undefined ? {} : { servername }) })
    const done = () => {
      socket.destroy()
      resolve()
    }
    socket.on("error", done)
    socket.on("close", done)
    socket.setTimeout(10_000, done)
  })

const waitFor = async (what: string, condition: () => boolean) => {
  for (let i = 0; i < 200; i++) {
    if (condition()) return
    await sleep(50)
  }
  throw new Error(`timed out waiting for ${what}`)
}

const main = async () => {
  if (!Fs.existsSync(chromium)) throw new Error(`no Chromium at ${chromium} (set CHROMIUM_PATH)`)
  const backends = await Promise.all([backend(48_000, 400), backend(32_000, 900), backend(64_000, 250), backend(16_000, 600)])
  const [a, b, c, api] = backends
  const dir = Fs.mkdtempSync(Path.join(Os.tmpdir(), "tcp-proxy-screenshot-"))
  Fs.writeFileSync(Path.join(dir, "token"), token)
  Fs.writeFileSync(
    Path.join(dir, "proxy.yaml"),
    [
      `backends: ["${a!.address}", "${b!.address}", { address: "${c!.address}", weight: 2 }]`,
      "routes:",
      `  - sni: ["api.example.com"]`,
      "    mode: passthrough",
      `    backends: ["${api!.address}"]`
    ].join("\n")
  )
  let stderr = ""
  const proxy = spawn(process.execPath, [
    Path.join(root, "dist", "Main.js"), "--laddr", "127.0.0.1:0", "--metrics-addr", "127.0.0.1:0",
    "--config", Path.join(dir, "proxy.yaml"), "--admin-token-file", Path.join(dir, "token"),
    "--health-interval", "500ms", "--unhealthy-threshold", "2"
  ], { stdio: ["ignore", "ignore", "pipe"] })
  proxy.stderr.on("data", (chunk: Buffer) => (stderr += chunk.toString()))
  const browser = await puppeteer.launch({ executablePath: chromium, headless: true, args: ["--no-sandbox", "--disable-gpu"] })
  try {
    await waitFor("the proxy", () => /listening on .*:\d+/.test(stderr) && /admin endpoint on /.test(stderr))
    const port = Number(/listening on [^ "]*:(\d+)/.exec(stderr)?.[1])
    const admin = Number(/admin endpoint on http:\/\/127\.0\.0\.1:(\d+)/.exec(stderr)?.[1])
    const page = await browser.newPage()
    await page.setViewport({ width: 1280, height: 800 })
    await page.goto(`http://127.0.0.1:${admin}/`, { waitUntil: "load" })
    await page.waitForFunction(`document.querySelectorAll("tr[data-address]").length === 4`, { timeout: 5000 })
    await page.type("#token", token)
    const started = Date.now()
    let stopped = false
    let drained = false
    const open = new Set<Promise<void>>()
    while (Date.now() - started < loadMs) {
      const elapsed = Date.now() - started
      // A rate that swells and ebbs, between about 10 and 60 new connections a second.
      const perSecond = 35 + 25 * Math.sin(elapsed / 6000)
      const connection = hello(port, Math.random() < 0.2 ? "api.example.com" : undefined)
      open.add(connection)
      void connection.then(() => open.delete(connection))
      if (!stopped && elapsed > loadMs * 0.5) {
        stopped = true
        b!.server.close()
      }
      if (!drained && elapsed > loadMs * 0.7) {
        drained = true
        await page.click(`tr[data-address="${a!.address}"] button[data-action="drain"]`)
      }
      await sleep(1000 / perSecond)
    }
    // Under load still: the connections opened last are open.
    Fs.mkdirSync(Path.dirname(output), { recursive: true })
    await page.screenshot({ path: output, fullPage: true })
    console.log(`saved ${Path.relative(root, output)}`)
    await Promise.all(open)
  } finally {
    await browser.close()
    proxy.kill("SIGTERM")
    for (const { server } of backends) server.close()
    Fs.rmSync(dir, { recursive: true, force: true })
  }
}

await main()
