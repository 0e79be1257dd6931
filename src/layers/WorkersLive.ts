/**
 * The control part's supervisor of its worker threads. It starts them (the
 * first one binds the listen address, learning its port when it is `:0`,
 * then the others bind the same port, the kernel spreading connections),
 * feeds each the members of every pool and every reload, adds their
 * reports to the proxy's metrics and active counts, and counts their failed
 * dials toward the backends' thresholds. A worker that exits is logged at
 * error level and replaced at once; one that keeps failing is replaced
 * after a growing pause (1 s, 2 s, ... 30 s). Closing the layer's scope
 * drains every worker (a `DrainCut` cuts every drain) and waits for them.
 *
 * @since 0.1.0
 */
import { Worker } from "node:worker_threads"
import * as Deferred from "effect/Deferred"
import * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
import * as Fiber from "effect/Fiber"
import * as FiberSet from "effect/FiberSet"
import * as Layer from "effect/Layer"
import * as Option from "effect/Option"
import * as Schedule from "effect/Schedule"
import * as Stream from "effect/Stream"
import * as SubscriptionRef from "effect/SubscriptionRef"
import * as Address from "../domain/Address.ts"
import * as ClientLimits from "../domain/ClientLimits.ts"
import * as ConfigCodec from "../domain/ConfigCodec.ts"
import { Metrics } from "../services/Metrics.ts"
import type { Pool } from "../services/Pool.ts"
import { Routes } from "../services/Routes.ts"
import { Settings } from "../services/Settings.ts"
import { DrainCut, Draining } from "../services/Shutdown.ts"
import { type MemberState, type ToControl, type ToWorker, type WorkerData, WorkerError, Workers, WorkersHandle } from "../services/Workers.ts"
import { checkDescriptors } from "./ListenerLive.ts"

/** How the workers are started. */
export interface WorkersOptions {
  /** The worker's module (the package's `Worker.js`). */
  readonly entry: URL
  /** How many workers. */
  readonly count: number
}

/** A worker that ran for less than this before exiting counts toward a crash loop. */
const stableMs = 10_000
/** The longest pause before replacing a worker that keeps failing. */
const maxBackoffMs = 30_000
/** A worker that has not reported for this long is said to be stuck (its last values are kept). */
const staleMs = 5_000
/** How long past `--grace` the workers may take to stop before they are ended. */
const stopSlack = Duration.seconds(5)

/** The name a pool has in every part of the proxy: `default`, or its route's server names. */
const poolName = (sni: ReadonlyArray<string> | undefined): string => sni === undefined ? "default" : sni.join(",")

/** What a worker that exited died of, in a few words. */
const describe = (error: unknown): string => {
  if (!(error instanceof Error)) return String(error)
  const code = "code" in error ? error.code : undefined
  return code === "ERR_WORKER_OUT_OF_MEMORY" ? "out of memory" : error.message.split("\n")[0] ?? ""
}

/** One worker's place: the thread running there now, if any, and its history. */
interface Slot {
  readonly index: number
  worker: Worker | undefined
  /** Completes when the thread there now has exited. */
  exited: Deferred.Deferred<void>
  started: number
  lastReport: number
  listening: boolean
  stale: boolean
  fastExits: number
  /** Why it failed, when it said so before exiting. */
  failure: string | undefined
  restartRequested: boolean
}

/** Starts the workers; fails when the first one cannot listen. */
export const layer = (
  options: WorkersOptions
): Layer.Layer<Workers, WorkerError, Routes | Settings | Metrics | Draining> =>
  Layer.effect(
    Workers,
    Effect.gen(function*() {
      const routes = yield* Routes
      const settings = yield* Settings
      const metrics = yield* Metrics
      const draining = yield* Draining
      const cut = yield* DrainCut
      const scope = yield* Effect.scope
      const background = yield* FiberSet.make()
      const runInBackground = yield* FiberSet.runtime(background)()
      let stopping = false

      // The per-IP table every worker counts in, made (seeded) before any worker starts.
      const clientTable = new SharedArrayBuffer(ClientLimits.byteLength(ClientLimits.defaultMaxEntries, options.count))
      const clientLimits = ClientLimits.make({ maxPerIp: undefined, rate: undefined, buffer: clientTable, threads: options.count })

      const slots: Array<Slot> = Array.from({ length: options.count }, (_, i) => ({
        index: i + 1,
        worker: undefined,
        exited: Deferred.makeUnsafe<void>(),
        started: 0,
        lastReport: 0,
        listening: false,
        stale: false,
        fastExits: 0,
        failure: undefined,
        restartRequested: false
      }))
      const broadcast = (message: ToWorker) => {
        for (const slot of slots) slot.worker?.postMessage(message)
      }

      // ---------------------------------------------------------------- the pools, as the workers see them

      let pools = new Map<string, Pool["Service"]>()
      const feeds = new Map<Pool["Service"], Fiber.Fiber<void>>()
      const membersOf = (pool: Pool["Service"]) =>
        Effect.map(pool.registry.all, (all) =>
          all.map((status): MemberState => ({
            backend: status.backend,
            state: status.state,
            admin: status.admin,
            since: status.since
          })))
      const sendMembers = (name: string, pool: Pool["Service"]) =>
        Effect.map(membersOf(pool), (members) => broadcast({ _tag: "Members", pool: name, members }))
      /** Every change of the pool's records reaches the workers (a burst of changes as one list). */
      const feed = (name: string, pool: Pool["Service"]) =>
        Effect.scoped(Effect.gen(function*() {
          const changes = yield* pool.registry.subscribe
          yield* sendMembers(name, pool)
          yield* Stream.runForEachArray(changes, () => sendMembers(name, pool))
        }))
      /** Follows the pools in force: new ones fed, gone ones no more; every worker gets every pool's members now. */
      const syncPools = Effect.gen(function*() {
        const next = new Map((yield* routes.pools).map((routed) => [poolName(routed.sni), routed.pool] as const))
        const kept = new Set(next.values())
        for (const [pool, fiber] of feeds) {
          if (kept.has(pool)) continue
          feeds.delete(pool)
          yield* Fiber.interrupt(fiber)
        }
        for (const [name, pool] of next) {
          if (!feeds.has(pool)) feeds.set(pool, yield* Effect.forkIn(feed(name, pool), scope))
          yield* sendMembers(name, pool)
        }
        pools = next
      })
      yield* syncPools

      // ---------------------------------------------------------------- starting, watching, replacing

      const onMessage = (slot: Slot, started: Deferred.Deferred<Address.HostPort, WorkerError>) => (message: ToControl) => {
        switch (message._tag) {
          case "Listening":
            slot.listening = true
            slot.lastReport = Date.now()
            Deferred.doneUnsafe(started, Effect.succeed({ host: message.host, port: message.port }))
            return
          case "StartFailed":
            slot.failure = message.message
            Deferred.doneUnsafe(started, Effect.fail(new WorkerError({ worker: slot.index, reason: message.message })))
            return
          case "DialFailed": {
            const pool = pools.get(message.pool)
            if (pool !== undefined) runInBackground(pool.registry.report(message.address, false, message.reason))
            return
          }
          case "Report": {
            slot.lastReport = Date.now()
            if (slot.stale) {
              slot.stale = false
              runInBackground(Effect.logInfo(`worker ${slot.index} reports again`))
            }
            metrics.absorb(slot.index, message.metrics)
            const active = new Map(message.active)
            for (const [name, pool] of pools) pool.registry.countRemote(slot.index, new Map(active.get(name) ?? []))
            return
          }
        }
      }

      /** What is left of a worker that exited: its open connections no longer count (per IP too); its counters stay. */
      const forget = (slot: Slot) => {
        slot.worker = undefined
        slot.listening = false
        metrics.absorb(slot.index, undefined)
        for (const pool of pools.values()) pool.registry.countRemote(slot.index, undefined)
        clientLimits.releaseThread(slot.index)
      }

      /** Starts a thread in `slot`, listening on `listen`; completes once it listens (or fails to). */
      const spawn = (slot: Slot, listen: Address.ListenAddress): Effect.Effect<Address.HostPort, WorkerError> =>
        Effect.gen(function*() {
          const members = yield* Effect.forEach(pools, ([name, pool]) => Effect.map(membersOf(pool), (list) => [name, list] as const))
          const config = yield* SubscriptionRef.get(settings)
          const started = Deferred.makeUnsafe<Address.HostPort, WorkerError>()
          const exited = Deferred.makeUnsafe<void>()
          const worker = new Worker(options.entry, {
            workerData: {
              index: slot.index,
              config: ConfigCodec.encode({ ...config, listen }),
              pools: members,
              clientTable,
              workers: options.count
            } satisfies WorkerData
          })
          Object.assign(slot, {
            worker,
            exited,
            started: Date.now(),
            listening: false,
            stale: false,
            failure: undefined,
            restartRequested: false
          })
          worker.on("message", onMessage(slot, started))
          worker.on("error", (error) => {
            slot.failure = describe(error)
          })
          worker.on("exit", (code) => {
            const reason = slot.restartRequested ? "restarted through the admin API" : slot.failure ?? `exit code ${code}`
            Deferred.doneUnsafe(started, Effect.fail(new WorkerError({ worker: slot.index, reason })))
            forget(slot)
            Deferred.doneUnsafe(exited, Effect.void)
            if (!stopping) runInBackground(replace(slot, reason, listen))
          })
          return yield* Deferred.await(started)
        })

      /** Replaces a worker that exited: at once, or after a pause when it keeps failing. */
      const replace = (slot: Slot, reason: string, listen: Address.ListenAddress): Effect.Effect<void> =>
        Effect.gen(function*() {
          yield* Effect.logError(`worker ${slot.index} exited: ${reason}`)
          const quick = Date.now() - slot.started < stableMs && !slot.restartRequested
          slot.fastExits = quick ? slot.fastExits + 1 : 0
          if (slot.fastExits > 0) {
            const pause = Math.min(maxBackoffMs, 1000 * 2 ** (slot.fastExits - 1))
            yield* Effect.logWarning(`worker ${slot.index} keeps failing: it is replaced in ${pause / 1000}s`)
            yield* Effect.sleep(pause)
          }
          if (stopping) return
          // A failure to start shows as an exit, which replaces it again.
          yield* Effect.ignore(spawn(slot, listen))
        })

      // The first worker binds the address (learning the port when it is :0), the others join it there.
      const [first, ...others] = slots
      const configured = (yield* SubscriptionRef.get(settings)).listen
      const start = Effect.gen(function*() {
        const bound = yield* spawn(first!, configured)
        const listen = { ...configured, port: bound.port }
        yield* Effect.forEach(others, (slot) => spawn(slot, listen), { concurrency: "unbounded", discard: true })
        return bound
      })
      // When one cannot start, none stays, and the proxy says why as a single process would.
      const bound = yield* start.pipe(
        Effect.onError(() =>
          Effect.promise(() => {
            stopping = true
            return Promise.all(slots.map((slot) => slot.worker?.terminate()))
          })
        ),
        Effect.mapError((error) => new WorkerError({ worker: undefined, reason: error.reason }))
      )
      yield* Effect.logInfo(`listening on ${Address.format(bound.host, bound.port)}`).pipe(
        Effect.annotateLogs({ workers: options.count })
      )
      yield* checkDescriptors((yield* SubscriptionRef.get(settings)).maxConnections, options.count)

      const running = () => slots.filter((slot) => slot.listening).length
      yield* metrics.trackWorkers(running)
      // The workers' open connections, which their reports add.
      yield* metrics.trackConnections(() => 0)

      // A worker that stops reporting is busy or stuck: said once, its last values kept.
      yield* Effect.sync(() => {
        const now = Date.now()
        for (const slot of slots) {
          if (stopping || !slot.listening || slot.stale || now - slot.lastReport < staleMs) continue
          slot.stale = true
          runInBackground(Effect.logWarning(
            `worker ${slot.index} has not reported for ${Math.round((now - slot.lastReport) / 1000)}s (busy or stuck): its last known metrics are kept`
          ))
        }
      }).pipe(Effect.repeat(Schedule.spaced("1 second")), Effect.forkScoped)

      yield* Effect.addFinalizer(() =>
        Effect.gen(function*() {
          stopping = true
          yield* draining.begin
          broadcast({ _tag: "Drain" })
          const exited = Effect.forEach(slots, (slot) => Deferred.await(slot.exited), { discard: true })
          const cutThem = cut.pipe(Effect.andThen(Effect.sync(() => broadcast({ _tag: "Cut" }))), Effect.andThen(Effect.never))
          const { grace } = yield* SubscriptionRef.get(settings)
          const stopped = yield* Effect.timeoutOption(Effect.raceFirst(exited, cutThem), Duration.sum(grace, stopSlack))
          if (Option.isNone(stopped)) {
            yield* Effect.logWarning("workers did not stop in time: ending them")
            yield* Effect.promise(() => Promise.all(slots.map((slot) => slot.worker?.terminate())))
          }
        })
      )

      const workers = Workers.of({
        count: options.count,
        running,
        restart: (index) =>
          Effect.sync(() => {
            const slot = slots[index - 1]
            if (slot?.worker === undefined) return false
            slot.restartRequested = true
            void slot.worker.terminate()
            return true
          }),
        reload: (config) =>
          Effect.andThen(syncPools, Effect.sync(() => broadcast({ _tag: "Reload", config: ConfigCodec.encode(config) })))
      })
      const handle = yield* WorkersHandle
      yield* Effect.acquireRelease(
        Effect.sync(() => {
          handle.current = workers
        }),
        () =>
          Effect.sync(() => {
            handle.current = undefined
          })
      )
      return workers
    })
  )
