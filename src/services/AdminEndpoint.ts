/**
 * The admin HTTP endpoint (`/metrics`, `/healthz`, `/backends`, and the
 * write API with `--admin-token-file`), when it is on.
 *
 * @since 0.1.0
 */
import * as Context from "effect/Context"
import * as Data from "effect/Data"
import type { HostPort } from "../domain/Address.ts"

/** The admin address could not be bound. */
export class AdminListenError extends Data.TaggedError("AdminListenError")<{
  readonly address: string
  readonly cause: unknown
}> {
  override get message(): string {
    const code = this.cause instanceof Error && "code" in this.cause ? this.cause.code : undefined
    const why = code === "EADDRINUSE" ? "address already in use" : String(this.cause)
    return `cannot listen on ${this.address} (metrics-addr): ${why}`
  }
}

/** The admin write API's token file cannot be used. */
export class AdminTokenError extends Data.TaggedError("AdminTokenError")<{
  readonly file: string
  readonly reason: string
}> {
  override get message(): string {
    return `cannot use ${this.file} (admin-token-file): ${this.reason}`
  }
}

/** The admin endpoint that is serving. */
export class AdminEndpoint extends Context.Service<AdminEndpoint, {
  /** The address actually bound. */
  readonly address: HostPort
}>()("effect-tcp-proxy/AdminEndpoint") {}
