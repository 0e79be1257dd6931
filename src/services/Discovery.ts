/**
 * Keeps the registry's backends in line with the configuration: backends
 * given by IP address as they are, backends given by host name as one
 * backend per address the name resolves to, re-resolved every
 * `--dns-refresh` and on every reload.
 *
 * @since 0.1.0
 */
import * as Context from "effect/Context"
import type * as Effect from "effect/Effect"
import type { RegistryUpdate } from "./BackendRegistry.ts"

/** Brings the registry in line with the configured backends. */
export class Discovery extends Context.Service<Discovery, {
  /** Resolves the configured backends now and updates the registry; returns what changed. */
  readonly refresh: Effect.Effect<RegistryUpdate>
}>()("effect-tcp-proxy/Discovery") {}
