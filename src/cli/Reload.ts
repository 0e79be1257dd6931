/**
 * Reloads: on SIGHUP, and when the config file changes on disk, re-read the
 * file and put it in force, with the flags given on the command line still
 * overriding it. A bad file is rejected with one error line and the running
 * configuration stays; whatever goes wrong in one reload, the next signal or
 * change is still handled. Without `--config` SIGHUP is logged and ignored.
 *
 * @since 0.1.0
 */
import * as Cause from "effect/Cause"
import * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
import * as Layer from "effect/Layer"
import * as Option from "effect/Option"
import * as Stream from "effect/Stream"
import type { Backend, PartialConfig, ProxyConfig } from "../domain/Config.ts"
import * as ConfigSource from "./ConfigSource.ts"
import { compose } from "./Flags.ts"

/** How long a changed file must stay the same before it is read for a reload, and how many times to wait. */
export const settle = { interval: Duration.millis(200), attempts: 25 } as const


/** One line for a failed reload, whatever the failure: an error's message, or the defect's. */
const failureLine = (cause: Cause.Cause<{ readonly message: string }>): string => {
  const error = Cause.squash(cause)
  const reason = error instanceof Error ? error.message : String(error)
  return `config reload failed: ${reason.split("\n")[0]}`
}

/**
 * The file's text once it has stopped changing: two reads a settle interval
 * apart that agree (an editor or a `cp` may still be writing it). After too
 * many changing reads, the last one.
 */
const settled = (path: string) =>
  Effect.gen(function*() {
    let text = yield* ConfigSource.read(path)
    for (let attempt = 1; attempt < settle.attempts; attempt++) {
      yield* Effect.sleep(settle.interval)
      const again = yield* ConfigSource.read(path)
      if (again === text) return text
      text = again
    }
    return text
  })

/**
 * Reloads the config file on SIGHUP and on changes to it, for as long as the
 * layer lives, putting each new configuration in force with `apply`
 * (`TcpProxy.reconfigure` in the CLI). `file` is the file and the text it
 * had at start.
 */
export const on = <R>(
  hangups: Stream.Stream<NodeJS.Signals>,
  file: Option.Option<{ readonly path: string; readonly text: string }>,
  overrides: PartialConfig,
  cliBackends: ReadonlyArray<Backend>,
  apply: (config: ProxyConfig) => Effect.Effect<void, { readonly message: string }, R>
) =>
  Layer.effectDiscard(Effect.gen(function*() {
    if (Option.isNone(file)) {
      yield* hangups.pipe(
        Stream.runForEach(() => Effect.logWarning("SIGHUP ignored: no --config file to reload")),
        Effect.forkScoped
      )
      return
    }
    const path = file.value.path
    /** The text last tried (put in force, or rejected): a change that leaves it as it was reloads nothing. */
    let lastTried = file.value.text
    const reload = (text: Effect.Effect<string, { readonly message: string }>, force: boolean) =>
      text.pipe(
        Effect.flatMap((text) => {
          if (!force && text === lastTried) return Effect.void
          lastTried = text
          return ConfigSource.parse(text, path).pipe(
            Effect.flatMap((loaded) => compose(loaded, overrides, cliBackends)),
            Effect.flatMap(apply)
          )
        }),
        Effect.catchCause((cause) => Effect.logError(failureLine(cause)))
      )
    // SIGHUP reads the file at once; a change on disk waits for the file to settle.
    yield* hangups.pipe(Stream.runForEach(() => reload(ConfigSource.read(path), true)), Effect.forkScoped)
    yield* ConfigSource.changes(path).pipe(Stream.runForEach(() => reload(settled(path), false)), Effect.forkScoped)
  }))
