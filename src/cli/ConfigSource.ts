/**
 * The config file on disk: reading it, parsing it with `domain/ConfigFile`
 * (loaded only when a file is configured: it brings Schema and YAML), and
 * noticing when it changes.
 *
 * @since 0.1.0
 */
import { watch } from "node:fs"
import { readFile } from "node:fs/promises"
import { basename, dirname } from "node:path"
import * as Effect from "effect/Effect"
import * as Queue from "effect/Queue"
import * as Stream from "effect/Stream"
import type { PartialConfig } from "../domain/Config.ts"
import { ConfigFileError } from "../domain/ConfigFileError.ts"

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

/** The file's text. */
export const read = (file: string): Effect.Effect<string, ConfigFileError> =>
  Effect.tryPromise({
    try: () => readFile(file, "utf8"),
    catch: (error) => new ConfigFileError({ file, path: "", reason: `cannot read: ${readFailure(error)}` })
  })

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
