/**
 * A worker thread of `tcp-proxy --workers N`: the listener (on the address
 * every worker shares), its connections and pools whose registries mirror
 * the control part's. It starts from what the control part gives it
 * (`WorkerData`), tells it once it listens, reports its metrics once a
 * second, applies the reloads it is sent, and drains when told to; then it
 * sends a last report and ends.
 *
 * @since 0.1.0
 */
import { type MessagePort, parentPort, workerData } from "node:worker_threads"
import * as Cause from "effect/Cause"
import * as Effect from "effect/Effect"
import * as Layer from "effect/Layer"
import * as Stream from "effect/Stream"
import * as ConfigCodec from "./domain/ConfigCodec.ts"
import * as ControlLinkLive from "./layers/ControlLinkLive.ts"
import * as Logging from "./layers/Logging.ts"
import * as MetricsLive from "./layers/MetricsLive.ts"
import * as SettingsLive from "./layers/SettingsLive.ts"
import { Listener } from "./services/Listener.ts"
import { Metrics } from "./services/Metrics.ts"
import { DrainCut } from "./services/Shutdown.ts"
import type { WorkerData } from "./services/Workers.ts"
import * as TcpProxy from "./TcpProxy.ts"

/** Tells the control part where the worker listens, once it does. */
const announce = (link: ControlLinkLive.Link) =>
  Layer.effectDiscard(Effect.map(Listener, ({ address }) =>
    link.send({ _tag: "Listening", host: address.host, port: address.port })))

/** Applies each reload the control part sends; one that fails is logged, and the next still applies. */
const reloads = (link: ControlLinkLive.Link) =>
  Layer.effectDiscard(
    link.reloads.pipe(
      Stream.runForEach((encoded) =>
        TcpProxy.reconfigure(ConfigCodec.decode(encoded), { log: false }).pipe(
          Effect.catchCause((cause) =>
            Effect.logError(`config reload failed: ${(Cause.pretty(cause).split("\n")[0] ?? "").trim()}`)
          )
        )
      ),
      Effect.forkScoped
    )
  )

const run = (port: MessagePort, data: WorkerData) =>
  Effect.gen(function*() {
    const link = yield* ControlLinkLive.make(port, data)
    const config = ConfigCodec.decode(data.config)
    const metrics = MetricsLive.make(yield* Effect.context<never>())
    const app = Layer.mergeAll(announce(link), reloads(link)).pipe(
      Layer.provideMerge(
        TcpProxy.layerWorker(
          config,
          link.service,
          { buffer: data.clientTable, threads: data.workers, thread: data.index },
          { metrics: Layer.succeed(Metrics, metrics) }
        )
      ),
      Layer.provide(Layer.succeed(DrainCut, link.cut)),
      Layer.provide(Logging.layerFor(data.index)),
      Layer.provideMerge(SettingsLive.layer(config))
    )
    yield* link.reportEvery(metrics)
    const started = yield* Effect.result(Effect.raceFirst(Layer.launch(app), link.drain))
    if (started._tag === "Failure") link.send({ _tag: "StartFailed", message: started.failure.message })
    else link.report(metrics)
  }).pipe(Effect.scoped)

if (parentPort !== null) {
  const data: WorkerData = workerData
  Effect.runFork(run(parentPort, data))
}
