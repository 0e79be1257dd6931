/**
 * The in-memory backend registry.
 *
 * @since 0.1.0
 */
import * as Effect from "effect/Effect"
import * as Layer from "effect/Layer"
import * as PubSub from "effect/PubSub"
import * as Stream from "effect/Stream"
import type { Backend } from "../domain/Config.ts"
import { BackendRegistry, type BackendStatus, type HealthState, RegistryChange } from "../services/BackendRegistry.ts"

/** A registry entry: mutable inside this module, read-only to everyone else. */
class Entry implements BackendStatus {
  state: HealthState = "HEALTHY"
  activeConnections = 0
  backend: Backend
  constructor(backend: Backend) {
    this.backend = backend
  }
}

/** Builds a registry holding `backends`, every one HEALTHY. */
export const make = Effect.fnUntraced(function*(backends: ReadonlyArray<Backend>) {
  const entries = new Map<string, Entry>()
  for (const backend of backends) entries.set(backend.address, new Entry(backend))
  const changes = yield* PubSub.unbounded<RegistryChange>()
  // `all` is a new array only when the membership or a weight changes (a balancer may cache on it);
  // `healthy` is recomputed on every change of state.
  let all: ReadonlyArray<Entry> = [...entries.values()]
  let healthy: ReadonlyArray<Entry> = all
  const refreshHealthy = () => {
    healthy = all.filter((entry) => entry.state === "HEALTHY")
  }

  const update = (backends: ReadonlyArray<Backend>) =>
    Effect.suspend(() => {
      const next = new Map(backends.map((backend) => [backend.address, backend]))
      const happened: Array<RegistryChange> = []
      for (const [address, entry] of entries) {
        if (!next.has(address)) {
          entries.delete(address)
          happened.push(RegistryChange.Removed({ backend: entry.backend }))
        }
      }
      const ordered = new Map<string, Entry>()
      for (const backend of next.values()) {
        const entry = entries.get(backend.address)
        if (entry === undefined) {
          ordered.set(backend.address, new Entry(backend))
          happened.push(RegistryChange.Added({ backend }))
        } else {
          if (entry.backend.weight !== backend.weight) happened.push(RegistryChange.Reweighted({ backend }))
          entry.backend = backend
          ordered.set(backend.address, entry)
        }
      }
      entries.clear()
      for (const [address, entry] of ordered) entries.set(address, entry)
      if (happened.length > 0) all = [...entries.values()]
      refreshHealthy()
      const addresses = (tag: RegistryChange["_tag"]) =>
        happened.filter((change) => change._tag === tag).map((change) => change.backend.address)
      return Effect.as(PubSub.publishAll(changes, happened), {
        added: addresses("Added"),
        removed: addresses("Removed"),
        reweighted: addresses("Reweighted")
      })
    })

  return BackendRegistry.of({
    all: Effect.sync(() => all),
    update,
    healthy: Effect.sync(() => healthy),
    setState: (address, state) =>
      Effect.suspend(() => {
        const entry = entries.get(address)
        if (entry === undefined || entry.state === state) return Effect.succeed(false)
        entry.state = state
        refreshHealthy()
        return Effect.as(PubSub.publish(changes, RegistryChange.StateChanged({ backend: entry.backend, state })), true)
      }),
    connectionOpened: (address) =>
      Effect.sync(() => {
        const entry = entries.get(address)
        if (entry !== undefined) entry.activeConnections++
      }),
    connectionClosed: (address) =>
      Effect.sync(() => {
        const entry = entries.get(address)
        if (entry !== undefined && entry.activeConnections > 0) entry.activeConnections--
      }),
    subscribe: Effect.map(PubSub.subscribe(changes), Stream.fromSubscription)
  })
})

/** A registry starting with `backends` (as given on the command line or in the config file). */
export const layer = (backends: ReadonlyArray<Backend>): Layer.Layer<BackendRegistry> =>
  Layer.effect(BackendRegistry, make(backends))
