/**
 * The proxy's listening endpoints, as seen by those who embed or test it.
 *
 * @since 0.1.0
 */
import * as Context from "effect/Context"
import type { HostPort } from "../domain/Address.ts"

/** The listener that is accepting clients. */
export class Listener extends Context.Service<Listener, {
  /** The address actually bound (with the port chosen when `:0` was asked for). */
  readonly address: HostPort
}>()("effect-tcp-proxy/Listener") {}

/** The admin HTTP endpoint (`/metrics`, `/healthz`, `/backends`), when it is on. */
export class AdminEndpoint extends Context.Service<AdminEndpoint, {
  /** The address actually bound. */
  readonly address: HostPort
}>()("effect-tcp-proxy/AdminEndpoint") {}
