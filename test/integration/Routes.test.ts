import { fileURLToPath } from "node:url"
import { assert, describe, it } from "@effect/vitest"
import { Context, Duration, Effect, Fiber, Option, Result, Stream, SubscriptionRef } from "effect"
import * as Config from "../../src/domain/Config.ts"
import { Routes } from "../../src/services/Routes.ts"
import { Settings } from "../../src/services/Settings.ts"
import * as TcpProxy from "../../src/TcpProxy.ts"
import { deadPort, echoServer, eventually, startProxy, testConfig } from "./helpers.ts"

const fixture = (name: string) => fileURLToPath(new URL(`../fixtures/tls/${name}`, import.meta.url))
const backend = (text: string) => Result.getOrThrow(Config.backend(text))

/** A passthrough route for `names` over `backends`. */
const route = (names: ReadonlyArray<string>, backends: ReadonlyArray<string>, lb?: Config.BalancerName): Config.Route => ({
  sni: names,
  mode: "passthrough",
  balancer: Option.fromUndefinedOr(lb),
  backends: backends.map(backend),
  tls: Option.none()
})

/** Fast checks, so that a dead backend turns UNHEALTHY within a few tens of milliseconds. */
const quickHealth: Config.HealthSettings = {
  interval: Duration.millis(20),
  timeout: Duration.millis(200),
  healthyThreshold: 1,
  unhealthyThreshold: 2
}

type Proxy = Effect.Success<ReturnType<typeof startProxy>>

/** `state activeConnections` of each backend of each pool, by server names (`default` for the default pool). */
const poolStates = (proxy: Proxy) =>
  Effect.gen(function*() {
    const pools = yield* Context.get(proxy.context, Routes).pools
    const out: Record<string, Record<string, string>> = {}
    for (const { pool, sni } of pools) {
      const members = yield* pool.registry.all
      out[sni?.join(",") ?? "default"] = Object.fromEntries(
        members.map((status) => [status.backend.address, status.state])
      )
    }
    return out
  })

const stateBecomes = (proxy: Proxy, pool: string, address: string, state: string) =>
  eventually(
    `${address} in ${pool} to be ${state}`,
    Effect.map(poolStates(proxy), (states) => states[pool]?.[address] === state ? Option.some(true) : Option.none())
  )

describe("route pools", () => {
  it.live("a route's backends have health checks of their own: a dead one turns UNHEALTHY and shows in the snapshot", () =>
    Effect.gen(function*() {
      const fallback = yield* echoServer()
      const dead = `127.0.0.1:${yield* deadPort}`
      const proxy = yield* startProxy(testConfig([fallback.address], {
        health: quickHealth,
        routes: [route(["api.example.com"], [dead])]
      }))
      yield* stateBecomes(proxy, "api.example.com", dead, "UNHEALTHY")
      assert.strictEqual((yield* poolStates(proxy)).default?.[fallback.address], "HEALTHY")
      const snapshot = yield* proxy.metrics.snapshot
      assert.include(snapshot, `tcp_proxy_backend_healthy{backend="${dead}"}: 0`)
      assert.include(snapshot, `tcp_proxy_health_checks_total{backend="${dead}",result="failure"}`)
    }))

  it.live("a reload that keeps a route keeps its pool: health state stays, new backends join", () =>
    Effect.gen(function*() {
      const fallback = yield* echoServer()
      const live = yield* echoServer()
      const dead = `127.0.0.1:${yield* deadPort}`
      const config = testConfig([fallback.address], {
        health: { ...quickHealth, interval: Duration.millis(50), healthyThreshold: 1000 },
        routes: [route(["api.example.com", "*.api.example.com"], [dead])]
      })
      const proxy = yield* startProxy(config)
      yield* stateBecomes(proxy, "api.example.com,*.api.example.com", dead, "UNHEALTHY")
      // The route keeps one of its names, changes its balancer and gains a backend.
      const next: Config.ProxyConfig = {
        ...config,
        routes: [route(["api.example.com", "v2.api.example.com"], [dead, live.address], "least-conn")]
      }
      yield* TcpProxy.reconfigure(next).pipe(Effect.provide(proxy.context))
      const states = yield* poolStates(proxy)
      assert.deepStrictEqual(states["api.example.com,v2.api.example.com"], {
        [dead]: "UNHEALTHY",
        [live.address]: "HEALTHY"
      })
      // A route with names of its own is a new pool; the old one is gone.
      yield* TcpProxy.reconfigure({ ...next, routes: [route(["other.example.com"], [dead])] }).pipe(
        Effect.provide(proxy.context)
      )
      const replaced = yield* poolStates(proxy)
      assert.deepStrictEqual(Object.keys(replaced), ["default", "other.example.com"])
      assert.strictEqual(replaced["other.example.com"]?.[dead], "HEALTHY", "a new pool starts its backends HEALTHY")
    }))
})

describe("atomic reload", () => {
  it.live("a reload that fails changes nothing and publishes nothing; one that succeeds publishes once", () =>
    Effect.gen(function*() {
      const fallback = yield* echoServer()
      const config = testConfig([fallback.address])
      const proxy = yield* startProxy(config)
      const settings = Context.get(proxy.context, Settings)
      const updates: Array<Config.ProxyConfig> = []
      const watcher = yield* SubscriptionRef.changes(settings).pipe(
        Stream.drop(1),
        Stream.runForEach((next) => Effect.sync(() => updates.push(next))),
        Effect.forkChild
      )
      yield* Effect.yieldNow
      const broken: Config.ProxyConfig = {
        ...config,
        retries: 7,
        backends: [...config.backends, backend("127.0.0.1:9")],
        tls: Option.some({ cert: fixture("missing.pem"), key: fixture("missing.key") })
      }
      const failed = yield* Effect.result(TcpProxy.reconfigure(broken).pipe(Effect.provide(proxy.context)))
      assert.isTrue(Result.isFailure(failed))
      assert.strictEqual((yield* SubscriptionRef.get(settings)).retries, config.retries)
      assert.deepStrictEqual((yield* proxy.registry.all).map((status) => status.backend.address), [fallback.address])
      yield* TcpProxy.reconfigure({ ...config, retries: 7 }).pipe(Effect.provide(proxy.context))
      yield* TcpProxy.reconfigure({ ...config, retries: 8 }).pipe(Effect.provide(proxy.context))
      // Whatever the failed reload or a double publication would have added comes before the last update.
      yield* eventually("two updates", Effect.sync(() => updates.length >= 2 ? Option.some(true) : Option.none()))
      assert.deepStrictEqual(updates.map((update) => update.retries), [7, 8])
      yield* Fiber.interrupt(watcher)
    }))
})
