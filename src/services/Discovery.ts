/**
 * Keeps a pool's registry in line with its configured backends: backends
 * given by IP address as they are, backends given by host name as one
 * backend per address the name resolves to, re-resolved every
 * `--dns-refresh` and on every reload.
 *
 * @since 0.1.0
 */
import * as Context from "effect/Context"
import type * as Effect from "effect/Effect"
import type { Backend } from "../domain/Config.ts"
import type { RegistryUpdate } from "./BackendRegistry.ts"

/** Brings the registry in line with the configured backends. */
export class Discovery extends Context.Service<Discovery, {
  /**
   * The backends `configured` stands for now: names resolved, each address
   * its own backend. Never fails: a name whose lookup fails keeps its last
   * good answer. Changes nothing.
   */
  readonly resolve: (configured: ReadonlyArray<Backend>) => Effect.Effect<ReadonlyArray<Backend>>
  /** Puts resolved backends in force in the registry; returns what changed. */
  readonly apply: (resolved: ReadonlyArray<Backend>) => Effect.Effect<RegistryUpdate>
}>()("effect-tcp-proxy/Discovery") {}
