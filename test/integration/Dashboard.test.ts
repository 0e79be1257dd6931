/**
 * The dashboard in headless Chromium over the built CLI: the page loads with
 * no console error and no request to another host, lists every pool, follows
 * a backend that dies, draws traffic, and drives the write API. Skipped when
 * no Chromium binary is found (`CHROMIUM_PATH`, else /usr/bin/chromium).
 */
import { existsSync, mkdtempSync, rmSync, writeFileSync } from "node:fs"
import { tmpdir } from "node:os"
import * as Tls from "node:tls"
import { join } from "node:path"
import { assert, describe, layer } from "@effect/vitest"
import { Context, Effect, Layer, Option } from "effect"
import puppeteer, { type Browser, type Page } from "puppeteer-core"
import { listeningPort, spawnCli } from "./cli.ts"
import { echoServer, eventually, type TestServer } from "./helpers.ts"

const chromium = process.env["CHROMIUM_PATH"] ?? "/usr/bin/chromium"
const haveChromium = existsSync(chromium)
if (!haveChromium) console.warn(`Dashboard browser tests skipped: no Chromium at ${chromium} (set CHROMIUM_PATH)`)

const token = "dashboard-token-0123456789"
/** Health checks every 200 ms, one failure turns a backend UNHEALTHY. */
const checkMs = 200 + 200
/** The page's refresh interval. */
const refreshMs = 1000

/** A proxy (default pool a, b; SNI route c) with the write API, and a browser. */
class Fixture extends Context.Service<Fixture, {
  readonly admin: number
  readonly port: number
  readonly a: TestServer
  readonly b: TestServer
  readonly c: TestServer
  readonly browser: Browser
}>()("test/DashboardFixture") {}

const scratch = Effect.acquireRelease(
  Effect.sync(() => mkdtempSync(join(tmpdir(), "tcp-proxy-dashboard-"))),
  (dir) => Effect.sync(() => rmSync(dir, { recursive: true, force: true }))
)

const FixtureLive = Layer.effect(
  Fixture,
  Effect.gen(function*() {
    const [a, b, c] = [yield* echoServer("a:"), yield* echoServer("b:"), yield* echoServer("c:")]
    const dir = yield* scratch
    writeFileSync(join(dir, "token"), `${token}\n`)
    writeFileSync(
      join(dir, "proxy.yaml"),
      [
        `backends: ["${a.address}", "${b.address}"]`,
        "routes:",
        `  - sni: ["api.example.com"]`,
        "    mode: passthrough",
        `    backends: ["${c.address}"]`
      ].join("\n")
    )
    const cli = yield* spawnCli([
      "--laddr", "127.0.0.1:0", "--metrics-addr", "127.0.0.1:0", "--config", join(dir, "proxy.yaml"),
      "--admin-token-file", join(dir, "token"), "--lb", "round-robin",
      "--health-interval", "200ms", "--health-timeout", "200ms", "--unhealthy-threshold", "1"
    ])
    const port = yield* listeningPort(cli)
    const admin = yield* eventually(
      "the admin endpoint",
      Effect.sync(() => Option.map(Option.fromNullishOr(/admin endpoint on http:\/\/127\.0\.0\.1:(\d+)/.exec(cli.stderr())), (m) => Number(m[1])))
    )
    const browser = yield* Effect.acquireRelease(
      Effect.promise(() =>
        puppeteer.launch({
          executablePath: chromium,
          headless: true,
          args: ["--no-sandbox", "--disable-gpu", "--no-first-run", "--disable-dev-shm-usage"]
        })
      ),
      (browser) => Effect.promise(() => browser.close())
    )
    return { admin, port, a, b, c, browser }
  })
)

/** The dashboard open in a new tab, with every request URL and console error recorded; closed with the scope. */
const openDashboard = (viewport = { width: 1280, height: 800 }) =>
  Effect.gen(function*() {
    const { admin, browser } = yield* Fixture
    const requests: Array<string> = []
    const errors: Array<string> = []
    const page = yield* Effect.acquireRelease(
      Effect.promise(async () => {
        const page = await browser.newPage()
        page.on("request", (request) => void requests.push(request.url()))
        page.on("console", (message) => {
          if (message.type() === "error" || message.type() === "warn") errors.push(message.text())
        })
        page.on("pageerror", (error) => void errors.push(String(error)))
        await page.setViewport(viewport)
        await page.goto(`http://127.0.0.1:${admin}/`, { waitUntil: "load" })
        return page
      }),
      (page) => Effect.promise(() => page.close())
    )
    return { page, requests, errors, origin: `http://127.0.0.1:${admin}/` }
  })

/** Waits (bounded) until `predicate` holds in the page. */
const waitIn = (page: Page, what: string, predicate: string, timeoutMs: number) =>
  Effect.tryPromise({
    try: () => page.waitForFunction(predicate, { timeout: timeoutMs, polling: 50 }),
    catch: (error) => new Error(`timed out waiting for ${what}: ${String(error)}`)
  }).pipe(Effect.asVoid)

/**
 * One connection through the front door, which reads a ClientHello first
 * when SNI routes are configured: a TLS hello (naming `servername`, if given)
 * that the echo backend sends back, which ends it.
 */
const hello = (port: number, servername?: string) =>
  Effect.callback<void>((resume) => {
    const socket = Tls.connect({ host: "127.0.0.1", port, ...(servername === undefined ? {} : { servername }) })
    socket.on("error", () => resume(Effect.void))
    socket.on("close", () => resume(Effect.void))
    return Effect.sync(() => socket.destroy())
  }).pipe(Effect.timeout("5 seconds"))

const rowSelector = (pool: string, address: string) => `table[data-pool="${pool}"] tr[data-address="${address}"]`

/** A backend's entry in the default pool of `/backends`. */
const entryOf = (admin: number, address: string) =>
  Effect.promise(async () => {
    const text = await (await fetch(`http://127.0.0.1:${admin}/backends`)).text()
    const view: { readonly backends: ReadonlyArray<{ readonly address: string; readonly admin: string }> } = JSON.parse(text)
    return view.backends.find((entry) => entry.address === address)
  })

describe.skipIf(!haveChromium)("dashboard in Chromium", () => {
  layer(FixtureLive, { excludeTestServices: true, timeout: "20 seconds" })((it) => {
    it.effect("loads with no console error and no request to another host, and lists every pool's backends", () =>
      Effect.gen(function*() {
        const { a, b, c } = yield* Fixture
        const { errors, origin, page, requests } = yield* openDashboard()
        for (const [pool, backend] of [["default", a], ["default", b], ["sni:api.example.com", c]] as const) {
          yield* waitIn(page, `${backend.address} in ${pool}`, `document.querySelector('${rowSelector(pool, backend.address)}[data-state="HEALTHY"]') !== null`, 5000)
        }
        const caption = yield* Effect.promise(() => page.$eval('table[data-pool="sni:api.example.com"] caption', (node) => node.textContent))
        assert.strictEqual(caption, "Route api.example.com")
        // The write API is on: a token field, and buttons that wait for a token.
        assert.isFalse(yield* Effect.promise(() => page.$eval("#write-api", (node) => node.hasAttribute("hidden"))))
        assert.isTrue(yield* Effect.promise(() => page.$eval(`${rowSelector("default", a.address)} button[data-action="drain"]`, (node) => node.hasAttribute("disabled"))))
        // At phone width nothing spills sideways (the tables scroll in their own boxes).
        yield* Effect.promise(() => page.setViewport({ width: 390, height: 844 }))
        yield* waitIn(page, "the page to fit a phone", "document.documentElement.scrollWidth <= window.innerWidth", 2000)
        assert.deepStrictEqual(errors, [])
        assert.isAbove(requests.length, 4)
        assert.deepStrictEqual(requests.filter((url) => !url.startsWith(origin) && url !== "data:,"), [])
      }))

    it.effect("charts have data points after traffic, for the totals and the backend that carried it", () =>
      Effect.gen(function*() {
        const { a, c, port } = yield* Fixture
        const { errors, page } = yield* openDashboard()
        for (let i = 0; i < 6; i++) yield* hello(port)
        yield* hello(port, "api.example.com")
        yield* waitIn(page, "connections/s in the totals chart", `Number(document.getElementById("chart-connections").dataset.max) > 0`, 5000)
        yield* waitIn(page, "bytes/s in the totals chart", `Number(document.getElementById("chart-bytes").dataset.max) > 0`, 5000)
        yield* waitIn(
          page,
          `connections/s on ${a.address}'s sparkline`,
          `Number(document.querySelector('${rowSelector("default", a.address)} .spark').dataset.max) > 0`,
          5000
        )
        yield* waitIn(
          page,
          `bytes/s on ${c.address}'s sparkline`,
          `Number(document.querySelectorAll('${rowSelector("sni:api.example.com", c.address)} .spark')[1].dataset.max) > 0`,
          5000
        )
        assert.deepStrictEqual(errors, [])
      }))

    it.effect("the drain button drains with the right token and shows 401 with a wrong one", () =>
      Effect.gen(function*() {
        const { a, admin } = yield* Fixture
        const { errors, page } = yield* openDashboard()
        const row = rowSelector("default", a.address)
        yield* waitIn(page, "the rows", `document.querySelector('${row}') !== null`, 5000)
        yield* Effect.promise(() => page.type("#token", "wrong-token"))
        yield* Effect.promise(() => page.click(`${row} button[data-action="drain"]`))
        yield* waitIn(page, "the 401", `document.querySelector('${row} .answer').textContent.startsWith("401")`, 5000)
        assert.strictEqual((yield* entryOf(admin, a.address))?.admin, "ready")
        yield* Effect.promise(async () => {
          await page.click("#token", { count: 3 })
          await page.keyboard.press("Backspace")
          await page.type("#token", token)
          await page.click(`${row} button[data-action="drain"]`)
        })
        yield* waitIn(page, "the 200", `document.querySelector('${row} .answer').textContent.startsWith("200")`, 5000)
        assert.strictEqual((yield* entryOf(admin, a.address))?.admin, "drain")
        yield* waitIn(page, "the admin state on the page", `document.querySelector('${row}').dataset.admin === "drain"`, 5000)
        yield* Effect.promise(() => page.click(`${row} button[data-action="ready"]`))
        yield* waitIn(page, "ready again", `document.querySelector('${row}').dataset.admin === "ready"`, 5000)
        // The 401 itself is the only thing the browser complains about.
        assert.deepStrictEqual(errors.filter((text) => !/status of 401/.test(text)), [])
      }))

    it.effect("a killed backend turns UNHEALTHY on the page within the check time and one refresh", () =>
      Effect.gen(function*() {
        const { b } = yield* Fixture
        const { errors, page } = yield* openDashboard()
        const row = rowSelector("default", b.address)
        yield* waitIn(page, "b HEALTHY", `document.querySelector('${row}[data-state="HEALTHY"]') !== null`, 5000)
        yield* Effect.sync(() => {
          b.server.close()
          for (const socket of b.accepted) socket.destroy()
        })
        // A check may be under way as it dies: two check periods, one refresh, and slack for a busy machine.
        yield* waitIn(page, "b UNHEALTHY", `document.querySelector('${row}[data-state="UNHEALTHY"]') !== null`, 2 * checkMs + refreshMs + 2000)
        const since = yield* Effect.promise(() => page.$eval(`${row} .since`, (node) => node.textContent))
        assert.match(since ?? "", /^for \d+ s$/)
        assert.deepStrictEqual(errors, [])
      }))
  })
})
