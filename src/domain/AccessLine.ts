/**
 * The access log line, one per finished client connection (`connection
 * closed`), formatted directly: it is written for every connection, so it
 * skips the generic logger's work (annotations, per-value formatting).
 *
 * @since 0.1.0
 */

/** The words for how a connection ended: the `end` field of its line. */
export const endWords = [
  "done",
  "client_reset",
  "backend_reset",
  "idle_timeout",
  "dial_failed",
  "no_backend",
  "rejected",
  "denied",
  "protocol_error",
  "backend_down",
  "shutdown"
] as const

/** How a connection ended: the `end` field of its line. */
export type EndWord = typeof endWords[number]

/** The fields of one `connection closed` line, as SPEC.md names them. */
export interface AccessEntry {
  /** `IP:PORT` of the client (the one a received PROXY header carries, when one did). */
  readonly client: string
  /** `HOST:PORT` of the last backend dialled, when one was. */
  readonly backend: string | undefined
  /** The proxy's own `IP:PORT` on the backend connection (to match the backend's logs), when one was made. */
  readonly backend_local: string | undefined
  readonly bytes_in: number
  readonly bytes_out: number
  readonly duration_ms: number
  readonly end: EndWord
}

const bare = /^[^\s"=\\]*$/

/** A string as logfmt shows it: bare when it can be, quoted otherwise. */
export const logfmtString = (text: string): string => bare.test(text) ? text : JSON.stringify(text)

/** The line in the text format, like the other lines: timestamp, level, fiber, message, then the fields. */
export const text = (entry: AccessEntry, timestamp: string, fiber: number): string =>
  `timestamp=${timestamp} level=INFO fiber=#${fiber} message="connection closed" client=${logfmtString(entry.client)}${
    entry.backend === undefined ? "" : ` backend=${logfmtString(entry.backend)}`
  }${entry.backend_local === undefined ? "" : ` backend_local=${logfmtString(entry.backend_local)}`} bytes_in=${entry.bytes_in} bytes_out=${entry.bytes_out} duration_ms=${entry.duration_ms} end=${entry.end}`

/** The line as one JSON object, the fields at the top level. */
export const json = (entry: AccessEntry, timestamp: string): string =>
  `{"timestamp":"${timestamp}","level":"INFO","message":"connection closed","client":${JSON.stringify(entry.client)}${
    entry.backend === undefined ? "" : `,"backend":${JSON.stringify(entry.backend)}`
  }${entry.backend_local === undefined ? "" : `,"backend_local":${JSON.stringify(entry.backend_local)}`},"bytes_in":${entry.bytes_in},"bytes_out":${entry.bytes_out},"duration_ms":${entry.duration_ms},"end":"${entry.end}"}`

/**
 * Formats access lines, as JSON when `asJson`. Connections that close in the
 * same millisecond share its timestamp, formatted once by each formatter.
 */
export const formatter = (): (entry: AccessEntry, timestamp: number, fiber: number, asJson: boolean) => string => {
  let stampedAt = Number.NaN
  let stamp = ""
  return (entry, timestamp, fiber, asJson) => {
    if (timestamp !== stampedAt) {
      stampedAt = timestamp
      stamp = new Date(timestamp).toISOString()
    }
    return asJson ? json(entry, stamp) : text(entry, stamp, fiber)
  }
}
