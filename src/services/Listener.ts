/**
 * The client-facing listener, as seen by those who embed or test the proxy.
 *
 * @since 0.1.0
 */
import { Context } from "effect"
import type { HostPort } from "../domain/Address.ts"

/** The listener that is accepting clients. */
export class Listener extends Context.Service<Listener, {
  /** The address actually bound (with the port chosen when `:0` was asked for). */
  readonly address: HostPort
}>()("effect-tcp-proxy/Listener") {}
