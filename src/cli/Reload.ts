/**
 * SIGHUP: re-read the config file and put it in force, with the flags given
 * on the command line still overriding it. A bad file is rejected with one
 * error line and the running configuration stays; without `--config` the
 * signal is logged and ignored.
 *
 * @since 0.1.0
 */
import * as Effect from "effect/Effect"
import * as Layer from "effect/Layer"
import * as Option from "effect/Option"
import * as Stream from "effect/Stream"
import type { Backend } from "../domain/Config.ts"
import * as ConfigFile from "../domain/ConfigFile.ts"
import { reconfigure } from "../TcpProxy.ts"
import { compose } from "./Flags.ts"

/** Reloads `file` on every arrival of SIGHUP, for as long as the layer lives. */
export const on = (
  arrivals: Stream.Stream<NodeJS.Signals>,
  file: Option.Option<string>,
  overrides: ConfigFile.FileConfig,
  cliBackends: ReadonlyArray<Backend>
) =>
  Layer.effectDiscard(Effect.gen(function*() {
    const reload = Option.match(file, {
      onNone: () => Effect.logWarning("SIGHUP ignored: no --config file to reload"),
      onSome: (path) =>
        ConfigFile.load(path).pipe(
          Effect.flatMap((loaded) => compose(loaded, overrides, cliBackends)),
          Effect.flatMap(reconfigure),
          Effect.catch((error) => Effect.logError(`config reload failed: ${error.message}`))
        )
    })
    yield* arrivals.pipe(Stream.runForEach(() => reload), Effect.forkScoped)
  }))
