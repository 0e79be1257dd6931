/**
 * The dashboard's history of the proxy (SPEC "Dashboard"): readings of the
 * metric registry and the pools taken every second, five minutes of them,
 * served as `GET /stats`.
 *
 * @since 0.1.0
 */
import * as Context from "effect/Context"
import type * as Effect from "effect/Effect"
import type { Feed } from "../domain/Stats.ts"

export type { BackendSeries, Feed, Series, StateChange, Values } from "../domain/Stats.ts"

/** The recent history of the proxy's totals and backends. */
export class Stats extends Context.Service<Stats, {
  /** The samples held now, as rates per second (the same object until the next sample). */
  readonly feed: Effect.Effect<Feed>
}>()("effect-tcp-proxy/Stats") {}
