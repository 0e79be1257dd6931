/**
 * Workers (`--workers N`): N threads accept and relay connections on the
 * same address, and one control part (the main thread) runs everything
 * else: health checks, discovery, reloads, signals, the admin endpoint.
 * This module is the contract between the two: the messages they exchange,
 * the `Workers` service of the control part and the `ControlLink` service
 * of a worker.
 *
 * A worker's pools keep their own registries, fed by the control part
 * (`ControlLink.members`): every change of a backend's state, admin state
 * or weight reaches each worker as one message, in order. A worker sends
 * back what only it sees: failed dials (for the backends' thresholds), its
 * metrics and its active connections per backend, once a second.
 *
 * @since 0.1.0
 */
import * as Context from "effect/Context"
import * as Data from "effect/Data"
import type * as Effect from "effect/Effect"
import type * as Scope from "effect/Scope"
import type * as Stream from "effect/Stream"
import type { Backend, ProxyConfig } from "../domain/Config.ts"
import type { EncodedConfig } from "../domain/ConfigCodec.ts"
import type { AdminState, HealthState } from "../domain/Health.ts"
import type { MetricsExport } from "./Metrics.ts"

/** A backend as the control part holds it: what every worker's registry mirrors. */
export interface MemberState {
  /** The backend, with the weight in force (an operator's, when set). */
  readonly backend: Backend
  readonly state: HealthState
  readonly admin: AdminState
  /** When the state last changed, in milliseconds since the epoch. */
  readonly since: number
}

/** Active connections per backend address, as a worker counts them in one pool. */
export type ActiveCounts = ReadonlyArray<readonly [address: string, count: number]>

/** What the control part tells a worker. */
export type ToWorker =
  /** The members of pool `pool` now (the whole list: the last one received is the truth). */
  | { readonly _tag: "Members"; readonly pool: string; readonly members: ReadonlyArray<MemberState> }
  /** A reload, already in force in the control part. */
  | { readonly _tag: "Reload"; readonly config: EncodedConfig }
  /** Stop listening and drain (SIGINT/SIGTERM). */
  | { readonly _tag: "Drain" }
  /** End the drain now (a second signal). */
  | { readonly _tag: "Cut" }

/** What a worker tells the control part. */
export type ToControl =
  /** The worker listens on this address. */
  | { readonly _tag: "Listening"; readonly host: string; readonly port: number }
  /** The worker could not start: one line saying why. */
  | { readonly _tag: "StartFailed"; readonly message: string }
  /** A dial of a real connection failed: it counts toward the backend's thresholds. */
  | { readonly _tag: "DialFailed"; readonly pool: string; readonly address: string; readonly reason: string | undefined }
  /** The worker's metrics and active connections per pool. */
  | {
    readonly _tag: "Report"
    readonly metrics: MetricsExport
    readonly active: ReadonlyArray<readonly [pool: string, counts: ActiveCounts]>
  }

/** What a worker thread starts with. */
export interface WorkerData {
  /** Its number, 1 to N. */
  readonly index: number
  readonly config: EncodedConfig
  /** The members of every pool when it was started. */
  readonly pools: ReadonlyArray<readonly [pool: string, members: ReadonlyArray<MemberState>]>
  /** The per-IP limits' table, shared by every worker. */
  readonly clientTable: SharedArrayBuffer
  /** How many workers share it. */
  readonly workers: number
}

/**
 * A worker that could not be started or stopped running. At start (no
 * `worker`) the reason is the proxy's: what a single process would say.
 */
export class WorkerError extends Data.TaggedError("WorkerError")<{
  readonly worker: number | undefined
  readonly reason: string
}> {
  override get message(): string {
    return this.worker === undefined ? this.reason : `worker ${this.worker}: ${this.reason}`
  }
}

/**
 * The memory of the per-IP limits' table (`ClientLimits`) when workers share
 * it: every worker counts its clients' connections in the same table, so the
 * limits hold for the whole proxy. Absent in a single process.
 */
export class SharedClientTable extends Context.Service<SharedClientTable, {
  readonly buffer: SharedArrayBuffer
  /** How many threads share it, and which one this is (1 to `threads`). */
  readonly threads: number
  readonly thread: number
}>()("effect-tcp-proxy/SharedClientTable") {}

/** The control part's view of its workers. */
export class Workers extends Context.Service<Workers, {
  /** How many workers there are meant to be. */
  readonly count: number
  /** How many are running now. */
  readonly running: () => number
  /** Ends worker `index` (1 to N) at once, as a crash would; it is replaced. False for no such worker. */
  readonly restart: (index: number) => Effect.Effect<boolean>
  /**
   * Puts a configuration the control part has just put in force in force in
   * every worker too: the pools' members first, then the configuration.
   */
  readonly reload: (config: ProxyConfig) => Effect.Effect<void>
}>()("effect-tcp-proxy/Workers") {}

/** A worker's link to the control part. */
export class ControlLink extends Context.Service<ControlLink, {
  /** This worker's number, 1 to N. */
  readonly worker: number
  /** The members of a pool as the control part holds them: the latest list first, then each new one. */
  readonly members: (pool: string) => Stream.Stream<ReadonlyArray<MemberState>>
  /** Reports a failed dial of a real connection to a backend of `pool`. */
  readonly dialFailed: (pool: string, address: string, reason: string | undefined) => void
  /** Reports the pool's active connections (read once a second) while the scope is open. */
  readonly countActive: (pool: string, read: () => ActiveCounts) => Effect.Effect<void, never, Scope.Scope>
}>()("effect-tcp-proxy/ControlLink") {}

/**
 * Where the control part's {@link Workers} can be reached by what is built
 * before them and stops after them (the admin endpoint): set while they
 * run; empty in a single process.
 */
export const WorkersHandle = Context.Reference<{ current: Workers["Service"] | undefined }>(
  "effect-tcp-proxy/WorkersHandle",
  { defaultValue: () => ({ current: undefined }) }
)
