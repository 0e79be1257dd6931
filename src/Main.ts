#!/usr/bin/env node
/**
 * The `tcp-proxy` command: flags (and the config file) -> config -> layers ->
 * run. Signals belong here, not to the library: SIGINT/SIGTERM drain (a
 * second one cuts the drain short), SIGUSR1 prints the metrics snapshot to
 * stdout, SIGHUP re-reads the config file.
 *
 * @since 0.1.0
 */
// First: V8 settings that must be in force before anything else is loaded.
import "./cli/Heap.ts"
import { readFileSync } from "node:fs"
import { availableParallelism } from "node:os"
import * as NodeRuntime from "@effect/platform-node/NodeRuntime"
import * as NodeServices from "@effect/platform-node/NodeServices"
import * as Cause from "effect/Cause"
import * as Console from "effect/Console"
import * as Effect from "effect/Effect"
import * as Exit from "effect/Exit"
import * as Layer from "effect/Layer"
import * as Option from "effect/Option"
import * as Schema from "effect/Schema"
import * as Stream from "effect/Stream"
import * as CliConfig from "effect/cli/CliConfig"
import * as CliError from "effect/cli/CliError"
import * as CliOutput from "effect/cli/CliOutput"
import * as Command from "effect/cli/Command"
import * as GlobalFlag from "effect/cli/GlobalFlag"
import * as ConfigSource from "./cli/ConfigSource.ts"
import * as Flags from "./cli/Flags.ts"
import * as Reload from "./cli/Reload.ts"
import { listen, nextStop } from "./cli/Signals.ts"
import type { ProxyConfig } from "./domain/Config.ts"
import { ConfigFileError } from "./domain/ConfigFileError.ts"
import * as Logging from "./layers/Logging.ts"
import * as SettingsLive from "./layers/SettingsLive.ts"
import * as WorkersLive from "./layers/WorkersLive.ts"
import { AdminListenError, AdminTokenError } from "./services/AdminEndpoint.ts"
import { ListenError } from "./services/Listener.ts"
import { Metrics } from "./services/Metrics.ts"
import { TlsConfigError } from "./services/Routes.ts"
import type { Settings } from "./services/Settings.ts"
import { DrainCut } from "./services/Shutdown.ts"
import { WorkerError, Workers } from "./services/Workers.ts"
import * as TcpProxy from "./TcpProxy.ts"

const version = Schema.decodeUnknownSync(Schema.Struct({ version: Schema.String }))(
  JSON.parse(readFileSync(new URL("../package.json", import.meta.url), "utf8"))
).version

/**
 * SIGUSR1: the metrics snapshot on stdout, for each arrival. When stdout is
 * not being read (its buffer already holds a megabyte), a snapshot is skipped
 * rather than piled up in memory.
 */
const snapshotOn = (arrivals: Stream.Stream<NodeJS.Signals>) =>
  Layer.effectDiscard(Effect.gen(function*() {
    const metrics = yield* Metrics
    const print = (snapshot: string) =>
      process.stdout.writableLength > maxUnwrittenStdout
        ? Effect.logWarning("SIGUSR1 snapshot skipped: stdout is not being read")
        : Effect.sync(() => {
          process.stdout.write(`${snapshot}\n`)
        })
    yield* arrivals.pipe(Stream.runForEach(() => Effect.flatMap(metrics.snapshot, print)), Effect.forkScoped)
  }))

/** The worker threads' module, beside this one (compiled, or run from source). */
const workerEntry = new URL(import.meta.url.endsWith(".ts") ? "./Worker.ts" : "./Worker.js", import.meta.url)

/** A reload with workers: in force in the control part, then in every worker. */
const reconfigureAll = (config: ProxyConfig) =>
  Effect.andThen(TcpProxy.reconfigure(config), Effect.flatMap(Workers, (workers) => workers.reload(config)))

/** How much of the snapshots stdout may hold unwritten before more are skipped. */
const maxUnwrittenStdout = 1024 * 1024

const command = Command.make("tcp-proxy", Flags.flags, (input) =>
  Effect.gen(function*() {
    // The file's text is read once here; reloads compare later reads with it.
    const source = Option.isSome(input.config)
      ? Option.some({ path: input.config.value, text: yield* ConfigSource.read(input.config.value) })
      : Option.none()
    const file = Option.isSome(source) ? yield* ConfigSource.parse(source.value.text, source.value.path) : undefined
    const overrides = yield* Flags.overrides(input)
    const backends = yield* Flags.backends(input)
    const config = yield* Flags.compose(file, overrides, backends)
    // Listen before anything starts, so that no signal finds its default action (ending the process).
    const usr1 = yield* listen("SIGUSR1")
    const hup = yield* listen("SIGHUP")
    const workers = config.workers === "auto" ? availableParallelism() : config.workers
    const launch = <A, E>(proxy: Layer.Layer<A, E, Settings>) =>
      Layer.launch(proxy.pipe(
        Layer.provide(Layer.succeed(DrainCut, nextStop)),
        // With workers, the main thread carries their lines to stderr: it writes its own from there too.
        Layer.provide(workers === 1 ? Logging.layer : Logging.layerControl),
        Layer.provideMerge(SettingsLive.layer(config))
      ))
    yield* workers === 1
      ? launch(Layer.mergeAll(snapshotOn(usr1), Reload.on(hup, source, overrides, backends, TcpProxy.reconfigure)).pipe(
        Layer.provideMerge(TcpProxy.layerWithSettings(config))
      ))
      : launch(Layer.mergeAll(snapshotOn(usr1), Reload.on(hup, source, overrides, backends, reconfigureAll)).pipe(
        Layer.provideMerge(TcpProxy.layerControl(config, WorkersLive.layer({ entry: workerEntry, count: workers })))
      ))
  }).pipe(Effect.scoped)).pipe(Command.withDescription("A TCP (layer 4) proxy and load balancer built on Effect."))

/**
 * A CLI error as one line: effect/cli words an unknown flag over several
 * lines (the error, then "Did you mean this?" and the suggestions).
 */
const oneLine = (message: string): string => {
  const [first = "", ...rest] = message.split("\n").map((line) => line.trim()).filter((line) => line !== "")
  const suggestions = rest.filter((line) => !/^did you mean/i.test(line))
  return suggestions.length === 0 ? first : `${first} (did you mean ${suggestions.join(" or ")}?)`
}

/** A CLI error in one line; a flag given more than once says so in those words. */
const describeCliError = (error: CliError.CliError): string => {
  if (error._tag === "InvalidValue" && error.kind === "flag") {
    const repeated = /^(\d+) occurrences$/.exec(error.value)
    if (repeated !== null) return `--${error.option} is given ${repeated[1]} times: give it once`
  }
  return oneLine(error.message)
}

const cliLayer = Layer.mergeAll(
  NodeServices.layer,
  CliConfig.layer({ builtIns: [GlobalFlag.Help, GlobalFlag.Version] }),
  CliOutput.layerPresenter({
    present: (event) =>
      event._tag === "InvalidInvocation"
        ? Console.error(`tcp-proxy: ${event.errors.map(describeCliError).join("; ")}`)
        : CliOutput.defaultPresenter.present(event)
  })
)

/** Errors a user can fix, reported as one line. */
const isUserError = (error: unknown): error is { readonly message: string } =>
  error instanceof Flags.ConfigError || error instanceof ConfigFileError ||
  error instanceof ListenError || error instanceof AdminListenError || error instanceof AdminTokenError ||
  error instanceof TlsConfigError || error instanceof WorkerError

/** One stderr line for a failure the user can fix; a full report only for a defect. */
const report = (cause: Cause.Cause<unknown>) =>
  Option.match(Cause.findErrorOption(cause), {
    onNone: () => Cause.hasInterruptsOnly(cause) ? Effect.void : Console.error(Cause.pretty(cause)),
    onSome: (error) =>
      CliError.isCliError(error)
        ? Effect.void // the presenter has printed it
        : isUserError(error)
        ? Console.error(`tcp-proxy: ${error.message}`)
        : Console.error(Cause.pretty(cause))
  })

Command.run(command, { version }).pipe(
  Effect.tapCause(report),
  Effect.provide(cliLayer),
  NodeRuntime.runMain({
    disableErrorReporting: true,
    teardown: (exit, onExit) => onExit(Exit.isSuccess(exit) || Cause.hasInterruptsOnly(exit.cause) ? 0 : 1)
  })
)
