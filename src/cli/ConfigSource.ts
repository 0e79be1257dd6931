/**
 * The config file on disk: reading it, parsing it with `domain/ConfigFile`
 * (loaded only when a file is configured: it brings Schema and YAML), and
 * noticing when it changes.
 *
 * @since 0.1.0
 */
import { watch } from "node:fs"
import { constants } from "node:fs"
import { open } from "node:fs/promises"
import { setTimeout as sleep } from "node:timers/promises"
import { basename, dirname } from "node:path"
import * as Effect from "effect/Effect"
import * as Queue from "effect/Queue"
import * as Stream from "effect/Stream"
import type { PartialConfig } from "../domain/Config.ts"
import { ConfigFileError, maxBytes } from "../domain/ConfigFileError.ts"

/** Why a file could not be read, in a few words. */
const readFailure = (error: unknown): string => {
  const code = error instanceof Error && "code" in error ? error.code : undefined
  return code === "ENOENT"
    ? "no such file"
    : code === "EACCES"
    ? "permission denied"
    : code === "EISDIR"
    ? "is a directory"
    : error instanceof Error
    ? error.message
    : String(error)
}

/** How long to wait before reading a FIFO again that has no data yet. */
const fifoPollMs = 50

/**
 * Reads at most `limit` bytes of a file; more than that is `undefined`. The
 * file is opened without blocking, so that a FIFO whose writer has not come
 * yet holds no thread and the wait stays interruptible (a signal can still
 * stop the proxy): a FIFO is read until its writer has written and closed it,
 * or until `signal` aborts the wait.
 */
const readAtMost = async (file: string, limit: number, signal: AbortSignal): Promise<Buffer | undefined> => {
  const handle = await open(file, constants.O_RDONLY | constants.O_NONBLOCK)
  try {
    const fifo = (await handle.stat()).isFIFO()
    const chunks: Array<Buffer> = []
    let total = 0
    for (;;) {
      const read = await handle.read({ buffer: Buffer.allocUnsafe(64 * 1024) }).catch((error: NodeJS.ErrnoException) => {
        if (error.code === "EAGAIN") return undefined
        throw error
      })
      if (read === undefined || (read.bytesRead === 0 && fifo && total === 0)) {
        // A FIFO with nothing written yet (no writer, or a writer that has not written).
        await sleep(fifoPollMs, undefined, { signal })
        continue
      }
      if (read.bytesRead === 0) return Buffer.concat(chunks, total)
      total += read.bytesRead
      if (total > limit) return undefined
      chunks.push(read.buffer.subarray(0, read.bytesRead))
    }
  } finally {
    await handle.close()
  }
}

/** The file's text; a file larger than the limit is refused without being read to its end. */
export const read = (file: string): Effect.Effect<string, ConfigFileError> =>
  Effect.tryPromise({
    try: (signal) => readAtMost(file, maxBytes, signal),
    catch: (error) => new ConfigFileError({ file, path: "", reason: `cannot read: ${readFailure(error)}` })
  }).pipe(
    Effect.flatMap((bytes) =>
      bytes === undefined
        ? Effect.fail(new ConfigFileError({ file, path: "", reason: `larger than ${maxBytes / 1024 / 1024} MiB` }))
        : Effect.succeed(bytes.toString("utf8"))
    )
  )

/** Parses a config file's text (see `ConfigFile.parse`). */
export const parse = (text: string, file: string): Effect.Effect<PartialConfig, ConfigFileError> =>
  Effect.flatMap(
    Effect.promise(() => import("../domain/ConfigFile.ts")),
    (ConfigFile) => Effect.fromResult(ConfigFile.parse(text, file))
  )

/** Reads and parses a config file. */
export const load = (file: string): Effect.Effect<PartialConfig, ConfigFileError> =>
  Effect.flatMap(read(file), (text) => parse(text, file))

/**
 * Changes to `file`, a burst of events as one. The directory is watched, not
 * the file: editors and Kubernetes (ConfigMap volumes) replace a file rather
 * than write it in place.
 */
export const changes = (file: string): Stream.Stream<void> =>
  Stream.callback<void>((queue) =>
    Effect.acquireRelease(
      Effect.sync(() => {
        const name = basename(file)
        const watcher = watch(dirname(file), (_event, changed) => {
          if (changed === null || changed === name || changed === "..data") Queue.offerUnsafe(queue, undefined)
        })
        watcher.on("error", () => Queue.endUnsafe(queue))
        return watcher
      }),
      (watcher) => Effect.sync(() => watcher.close())
    )
  ).pipe(Stream.debounce("200 millis"))
