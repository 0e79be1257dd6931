/**
 * The dashboard (SPEC "Dashboard") on the admin endpoint: `GET /` serves one
 * page whose HTML, CSS and script, uPlot included, all come from the admin
 * endpoint itself (nothing is fetched from another host, and a
 * Content-Security-Policy says so to the browser); `GET /stats` serves the
 * sampler's history. The page reads `/stats` and `/backends` every second
 * and calls the write API with the token typed into it.
 *
 * @since 0.1.0
 */
import { readFile } from "node:fs/promises"
import { createRequire } from "node:module"
import { dirname, join } from "node:path"
import { fileURLToPath } from "node:url"
import * as Clock from "effect/Clock"
import * as Effect from "effect/Effect"
import * as Layer from "effect/Layer"
import * as Option from "effect/Option"
import * as SubscriptionRef from "effect/SubscriptionRef"
import * as HttpRouter from "effect/http/HttpRouter"
import * as HttpServerResponse from "effect/http/HttpServerResponse"
import { Settings } from "../services/Settings.ts"
import { Stats } from "../services/Stats.ts"

/** What the page may load: only from the admin endpoint itself. */
export const contentSecurityPolicy = [
  "default-src 'none'",
  "script-src 'self'",
  "style-src 'self'",
  "img-src 'self' data:",
  "connect-src 'self'",
  "base-uri 'none'",
  "form-action 'none'",
  "frame-ancestors 'none'"
].join("; ")

const headers = {
  "content-security-policy": contentSecurityPolicy,
  "x-content-type-options": "nosniff",
  "cache-control": "no-cache"
}

/** The page's own files, next to this module (`src/dashboard`, copied to `dist/dashboard` by the build). */
const page = (file: string): string => fileURLToPath(new URL(`../dashboard/${file}`, import.meta.url))

/** uPlot's files, from its installed package. */
const uplot = (file: string): string =>
  join(dirname(createRequire(import.meta.url).resolve("uplot/package.json")), file)

/** The files served, by path: where each is read from and its type. */
const assets: ReadonlyArray<{ readonly path: HttpRouter.PathInput; readonly file: () => string; readonly contentType: string }> = [
  { path: "/", file: () => page("index.html"), contentType: "text/html; charset=utf-8" },
  { path: "/assets/dashboard.js", file: () => page("dashboard.js"), contentType: "text/javascript; charset=utf-8" },
  { path: "/assets/dashboard.css", file: () => page("dashboard.css"), contentType: "text/css; charset=utf-8" },
  { path: "/assets/uPlot.min.js", file: () => uplot("dist/uPlot.iife.min.js"), contentType: "text/javascript; charset=utf-8" },
  { path: "/assets/uPlot.min.css", file: () => uplot("dist/uPlot.min.css"), contentType: "text/css; charset=utf-8" },
  { path: "/assets/uPlot.LICENSE", file: () => uplot("LICENSE"), contentType: "text/plain; charset=utf-8" }
]

/** A file read at its first request and kept; 500 when it cannot be read (a broken install). */
const serveOnce = Effect.fnUntraced(function*(file: () => string, contentType: string) {
  const read = yield* Effect.cached(Effect.tryPromise(() => readFile(file(), "utf8")))
  return read.pipe(
    Effect.map((text) => HttpServerResponse.text(text, { contentType, headers })),
    Effect.catch(() => Effect.succeed(HttpServerResponse.text("dashboard file missing\n", { status: 500 })))
  )
})

/** The dashboard's routes: the page, its assets and `/stats`. */
export const routes: Layer.Layer<never, never, HttpRouter.HttpRouter | Stats | Settings> = Layer.unwrap(Effect.gen(function*() {
  const history = yield* Stats
  const settings = yield* Settings
  /**
   * `/stats`: the sampler's feed, with the server's time (`now`, for the
   * page's "UNHEALTHY for 42 s") and whether the write API is on (`writeApi`).
   */
  const stats = Effect.gen(function*() {
    const feed = yield* history.feed
    const writeApi = Option.isSome((yield* SubscriptionRef.get(settings)).adminTokenFile)
    const now = yield* Clock.currentTimeMillis
    return HttpServerResponse.jsonUnsafe({ now, writeApi, ...feed }, { headers: { "cache-control": "no-store" } })
  })
  const files = yield* Effect.forEach(assets, (asset) =>
    Effect.map(serveOnce(asset.file, asset.contentType), (serve) => HttpRouter.add("GET", asset.path, serve)))
  return Layer.mergeAll(HttpRouter.add("GET", "/stats", stats), ...files)
}))
