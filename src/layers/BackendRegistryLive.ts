/**
 * The in-memory backend registry.
 *
 * @since 0.1.0
 */
import { Effect, Layer, PubSub, Stream } from "effect"
import type { Backend } from "../domain/Config.ts"
import { BackendRegistry, type BackendStatus, type HealthState, RegistryChange } from "../services/BackendRegistry.ts"

/** A registry entry: mutable inside this module, read-only to everyone else. */
class Entry implements BackendStatus {
  state: HealthState = "HEALTHY"
  activeConnections = 0
  readonly backend: Backend
  constructor(backend: Backend) {
    this.backend = backend
  }
}

/** Builds a registry holding `backends`, every one HEALTHY. */
export const make = Effect.fnUntraced(function*(backends: ReadonlyArray<Backend>) {
  const entries = new Map<string, Entry>()
  for (const backend of backends) entries.set(backend.address, new Entry(backend))
  const changes = yield* PubSub.unbounded<RegistryChange>()
  let all: ReadonlyArray<Entry> = [...entries.values()]
  let healthy: ReadonlyArray<Entry> = all
  const refresh = () => {
    all = [...entries.values()]
    healthy = all.filter((entry) => entry.state === "HEALTHY")
  }

  return BackendRegistry.of({
    all: Effect.sync(() => all),
    healthy: Effect.sync(() => healthy),
    setState: (address, state) =>
      Effect.suspend(() => {
        const entry = entries.get(address)
        if (entry === undefined || entry.state === state) return Effect.succeed(false)
        entry.state = state
        refresh()
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

/** A registry of a fixed list of backends, as given on the command line. */
export const layer = (backends: ReadonlyArray<Backend>): Layer.Layer<BackendRegistry> =>
  Layer.effect(BackendRegistry, make(backends))
