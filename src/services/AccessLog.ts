/**
 * The access log: one `connection closed` line per finished client
 * connection, at info level. By default it goes through the Effect logger
 * like every other line; the CLI swaps in a writer that formats the line
 * directly (it is written for every connection, so its cost counts).
 *
 * @since 0.1.0
 */
import * as Context from "effect/Context"
import * as Effect from "effect/Effect"
import type { AccessEntry } from "../domain/AccessLine.ts"

export type { AccessEntry } from "../domain/AccessLine.ts"

/** Writes access log lines. */
export interface AccessLogWriter {
  readonly write: (entry: AccessEntry) => Effect.Effect<void>
}

/** The line through the Effect logger, the entry's fields as annotations. */
export const viaLogger: AccessLogWriter = {
  write: (entry) => {
    const annotations: Record<string, unknown> = { client: entry.client }
    if (entry.backend !== undefined) annotations.backend = entry.backend
    if (entry.backend_local !== undefined) annotations.backend_local = entry.backend_local
    annotations.bytes_in = entry.bytes_in
    annotations.bytes_out = entry.bytes_out
    annotations.duration_ms = entry.duration_ms
    annotations.end = entry.end
    return Effect.logInfo("connection closed").pipe(Effect.annotateLogs(annotations))
  }
}

/** The access log writer in use: through the Effect logger unless replaced. */
export const AccessLog = Context.Reference<AccessLogWriter>("effect-tcp-proxy/AccessLog", {
  defaultValue: () => viaLogger
})
