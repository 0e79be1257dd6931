/**
 * A worker thread's side of the link to the control part, over the thread's
 * message port: the pools' members as the control part sends them, failed
 * dials and reports sent back, and the control part's orders (reload,
 * drain, cut) as effects the worker waits on.
 *
 * @since 0.1.0
 */
import type { MessagePort } from "node:worker_threads"
import * as Deferred from "effect/Deferred"
import * as Effect from "effect/Effect"
import * as Queue from "effect/Queue"
import * as Schedule from "effect/Schedule"
import type * as Scope from "effect/Scope"
import * as Stream from "effect/Stream"
import * as SubscriptionRef from "effect/SubscriptionRef"
import type { EncodedConfig } from "../domain/ConfigCodec.ts"
import type { Metrics } from "../services/Metrics.ts"
import {
  type ActiveCounts,
  ControlLink,
  type MemberState,
  type ToControl,
  type ToWorker,
  type WorkerData
} from "../services/Workers.ts"

/** How often a worker reports its metrics and active connections. */
export const reportInterval = "1 second"

/** A worker's link, and what the worker itself waits on. */
export interface Link {
  readonly service: ControlLink["Service"]
  /** Completes when the control part orders a drain. */
  readonly drain: Effect.Effect<void>
  /** Completes when the control part orders the drain cut short. */
  readonly cut: Effect.Effect<void>
  /** The reloads the control part sends, in order. */
  readonly reloads: Stream.Stream<EncodedConfig>
  /** Sends a message to the control part. */
  readonly send: (message: ToControl) => void
  /** Reports `metrics` and the pools' active connections now, then once a second while the scope is open. */
  readonly reportEvery: (metrics: Metrics["Service"]) => Effect.Effect<void, never, Scope.Scope>
  /** Reports once (the last report, after the drain). */
  readonly report: (metrics: Metrics["Service"]) => void
}

/** The link over `port`, starting from the pools' members in `data`; it listens while the scope is open. */
export const make = Effect.fnUntraced(function*(port: MessagePort, data: WorkerData) {
  const pools = new Map<string, SubscriptionRef.SubscriptionRef<ReadonlyArray<MemberState> | undefined>>()
  const poolRef = Effect.fnUntraced(function*(pool: string) {
    const existing = pools.get(pool)
    if (existing !== undefined) return existing
    const ref = yield* SubscriptionRef.make<ReadonlyArray<MemberState> | undefined>(undefined)
    pools.set(pool, ref)
    return ref
  })
  for (const [pool, members] of data.pools) yield* SubscriptionRef.set(yield* poolRef(pool), members)

  const drain = yield* Deferred.make<void>()
  const cut = yield* Deferred.make<void>()
  const reloads = yield* Queue.unbounded<EncodedConfig>()
  const send = (message: ToControl) => port.postMessage(message)

  const messages = Stream.callback<ToWorker>((queue) =>
    Effect.acquireRelease(
      Effect.sync(() => {
        const onMessage = (message: ToWorker) => Queue.offerUnsafe(queue, message)
        port.on("message", onMessage)
        return onMessage
      }),
      (onMessage) => Effect.sync(() => port.off("message", onMessage))
    )
  )
  // One at a time, in order: a pool's members arrive before the reload that builds the pool.
  yield* messages.pipe(
    Stream.runForEach((message) => {
      switch (message._tag) {
        case "Members":
          return Effect.flatMap(poolRef(message.pool), (ref) => SubscriptionRef.set(ref, message.members))
        case "Reload":
          return Queue.offer(reloads, message.config)
        case "Drain":
          return Deferred.succeed(drain, undefined)
        case "Cut":
          return Effect.andThen(Deferred.succeed(drain, undefined), Deferred.succeed(cut, undefined))
      }
    }),
    Effect.forkScoped
  )

  const counters = new Map<string, () => ActiveCounts>()
  const report = (metrics: Metrics["Service"]) =>
    send({
      _tag: "Report",
      metrics: metrics.export(),
      active: Array.from(counters, ([pool, read]) => [pool, read()] as const)
    })

  const service = ControlLink.of({
    worker: data.index,
    members: (pool) =>
      Stream.unwrap(Effect.map(poolRef(pool), (ref) =>
        SubscriptionRef.changes(ref).pipe(
          Stream.filter((members): members is ReadonlyArray<MemberState> => members !== undefined)
        ))),
    dialFailed: (pool, address, reason) => send({ _tag: "DialFailed", pool, address, reason }),
    countActive: (pool, read) =>
      Effect.acquireRelease(
        Effect.sync(() => counters.set(pool, read)),
        () =>
          Effect.sync(() => {
            if (counters.get(pool) === read) counters.delete(pool)
          })
      )
  })

  return {
    service,
    drain: Deferred.await(drain),
    cut: Deferred.await(cut),
    reloads: Stream.fromQueue(reloads),
    send,
    report,
    reportEvery: (metrics) =>
      Effect.sync(() => report(metrics)).pipe(
        Effect.repeat(Schedule.spaced(reportInterval)),
        Effect.asVoid,
        Effect.forkScoped,
        Effect.asVoid
      )
  } satisfies Link
})
