/**
 * Reloads: on SIGHUP, and when the config file changes on disk, re-read the
 * file and put it in force, with the flags given on the command line still
 * overriding it. A bad file is rejected with one error line and the running
 * configuration stays; without `--config` SIGHUP is logged and ignored.
 *
 * @since 0.1.0
 */
import * as Effect from "effect/Effect"
import * as Layer from "effect/Layer"
import * as Option from "effect/Option"
import * as Stream from "effect/Stream"
import type { Backend, PartialConfig } from "../domain/Config.ts"
import { reconfigure } from "../TcpProxy.ts"
import * as ConfigSource from "./ConfigSource.ts"
import { compose } from "./Flags.ts"

/** Reloads the config file on SIGHUP and on changes to it, for as long as the layer lives. */
export const on = (
  hangups: Stream.Stream<NodeJS.Signals>,
  file: Option.Option<string>,
  overrides: PartialConfig,
  cliBackends: ReadonlyArray<Backend>
) =>
  Layer.effectDiscard(Effect.gen(function*() {
    if (Option.isNone(file)) {
      yield* hangups.pipe(
        Stream.runForEach(() => Effect.logWarning("SIGHUP ignored: no --config file to reload")),
        Effect.forkScoped
      )
      return
    }
    const path = file.value
    /** The text last tried (put in force, or rejected): a change that leaves it as it was reloads nothing. */
    let lastTried = yield* ConfigSource.read(path).pipe(Effect.orElseSucceed(() => ""))
    const reload = (force: boolean) =>
      ConfigSource.read(path).pipe(
        Effect.flatMap((text) => {
          if (!force && text === lastTried) return Effect.void
          lastTried = text
          return ConfigSource.parse(text, path).pipe(
            Effect.flatMap((loaded) => compose(loaded, overrides, cliBackends)),
            Effect.flatMap(reconfigure)
          )
        }),
        Effect.catch((error) => Effect.logError(`config reload failed: ${error.message}`))
      )
    yield* hangups.pipe(Stream.runForEach(() => reload(true)), Effect.forkScoped)
    yield* ConfigSource.changes(path).pipe(Stream.runForEach(() => reload(false)), Effect.forkScoped)
  }))
