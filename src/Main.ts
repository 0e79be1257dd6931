#!/usr/bin/env node
/**
 * The `tcp-proxy` command: flags -> config -> layers -> run. Signals belong
 * here, not to the library: SIGINT/SIGTERM drain (a second one cuts the drain
 * short), SIGUSR1 prints the metrics snapshot to stdout.
 *
 * @since 0.1.0
 */
import { readFileSync } from "node:fs"
import { NodeRuntime, NodeServices } from "@effect/platform-node"
import { Cause, Console, Data, Effect, Exit, Layer, type LogLevel, Option, Result, Schema, Stream } from "effect"
import { Argument, CliConfig, CliError, CliOutput, Command, Flag, GlobalFlag } from "effect/cli"
import * as Address from "./domain/Address.ts"
import * as Config from "./domain/Config.ts"
import * as Duration from "./domain/Duration.ts"
import * as ProxyProtocol from "./domain/ProxyProtocol.ts"
import * as Logging from "./layers/Logging.ts"
import { AdminListenError } from "./layers/AdminServer.ts"
import { ListenError } from "./layers/Listener.ts"
import { Metrics } from "./services/Metrics.ts"
import { DrainCut } from "./services/Shutdown.ts"
import { nextStop, signals } from "./Signals.ts"
import * as TcpProxy from "./TcpProxy.ts"

/** A flag or argument value that cannot be used. */
export class ConfigError extends Data.TaggedError("ConfigError")<{ readonly message: string }> {}

const version = Schema.decodeUnknownSync(Schema.Struct({ version: Schema.String }))(
  JSON.parse(readFileSync(new URL("../package.json", import.meta.url), "utf8"))
).version

const durationExpected = () => `a duration such as 3s, 500ms, 1m30s or "3 seconds"`

const duration = (name: string, fallback: string, description: string) =>
  Flag.String(name).pipe(
    Flag.withDefault(fallback),
    Flag.filterMap(Duration.parse, durationExpected),
    Flag.withDescription(`${description} (default ${fallback})`)
  )

const optionalDuration = (name: string, description: string) =>
  Flag.String(name).pipe(
    Flag.filterMap(Duration.parse, durationExpected),
    Flag.optional,
    Flag.withDescription(`${description} (default: none)`)
  )

const choice = <const A extends string>(name: string, values: ReadonlyArray<A>, fallback: A, description: string) =>
  Flag.String(name).pipe(
    Flag.withDefault(fallback),
    Flag.filterMap(
      (text) => Option.fromNullishOr(values.find((value) => value === text.toLowerCase())),
      () => `one of ${values.join(", ")}`
    ),
    Flag.withDescription(`${description}: ${values.join(" | ")} (default ${fallback})`)
  )

const count = (name: string, fallback: number, minimum: number, description: string) =>
  Flag.Int(name).pipe(
    Flag.withDefault(fallback),
    Flag.filter((n) => n >= minimum, () => `an integer >= ${minimum}`),
    Flag.withDescription(`${description} (default ${fallback})`)
  )

const effectLevel: Record<Config.LogLevelName, LogLevel.LogLevel> = {
  debug: "Debug",
  info: "Info",
  warn: "Warn",
  error: "Error"
}

const flags = {
  backends: Argument.String("backend").pipe(
    Argument.withDescription("HOST:PORT (IPv6 as [ADDR]:PORT) of a backend"),
    Argument.variadic()
  ),
  laddr: Flag.String("laddr").pipe(
    Flag.withDefault(":4000"),
    Flag.withDescription("address to listen on: HOST:PORT, :PORT or [IPV6]:PORT (default :4000)")
  ),
  metricsAddr: Flag.String("metrics-addr").pipe(
    Flag.optional,
    Flag.withDescription("serve /metrics, /healthz and /backends here, e.g. 127.0.0.1:9090 (default: off)")
  ),
  lb: choice("lb", Config.balancerNames, "p2c", "balancer"),
  timeout: duration("timeout", "3s", "backend dial timeout"),
  retries: count("retries", 2, 0, "other backends tried when a dial fails"),
  healthInterval: duration("health-interval", "5s", "time between active health checks"),
  healthTimeout: duration("health-timeout", "1s", "one health check's dial timeout"),
  healthyThreshold: count("healthy-threshold", 3, 1, "consecutive successes to turn HEALTHY"),
  unhealthyThreshold: count("unhealthy-threshold", 3, 1, "consecutive failures to turn UNHEALTHY"),
  grace: duration("grace", "5s", "drain time on shutdown"),
  maxConnections: count("max-connections", 10_000, 1, "concurrent client connections; past it new clients are closed at once"),
  idleTimeout: optionalDuration("idle-timeout", "close a connection with no bytes in either direction for this long"),
  proxyProtocol: choice("proxy-protocol", ProxyProtocol.modes, "off", "send a PROXY protocol header to the backend"),
  logLevel: choice("log-level", Config.logLevels, "info", "log level"),
  logFormat: choice("log-format", Config.logFormats, "text", "log format")
}

type Flags = Command.Command.Config.Infer<typeof flags>

const fromResult = <A>(result: Result.Result<A, string>) =>
  Result.isSuccess(result) ? Effect.succeed(result.success) : Effect.fail(new ConfigError({ message: result.failure }))

/** Turns parsed flags into a {@link Config.ProxyConfig}, failing on the first bad address. */
const toConfig = Effect.fnUntraced(function*(input: Flags) {
  if (input.backends.length === 0) {
    return yield* new ConfigError({ message: "no backends given (expected at least one HOST:PORT)" })
  }
  const backends: Array<Config.Backend> = []
  for (const text of input.backends) backends.push(yield* fromResult(Config.backend(text)))
  const listen = yield* fromResult(Address.parseListen(input.laddr))
  const metricsAddress = Option.isSome(input.metricsAddr)
    ? Option.some(yield* fromResult(Address.parseListen(input.metricsAddr.value)))
    : Option.none()
  return Config.make({
    listen,
    backends,
    balancer: input.lb,
    dialTimeout: input.timeout,
    retries: input.retries,
    health: {
      interval: input.healthInterval,
      timeout: input.healthTimeout,
      healthyThreshold: input.healthyThreshold,
      unhealthyThreshold: input.unhealthyThreshold
    },
    grace: input.grace,
    maxConnections: input.maxConnections,
    idleTimeout: input.idleTimeout,
    proxyProtocol: input.proxyProtocol,
    metricsAddress
  })
})

/** SIGUSR1: the metrics snapshot on stdout. */
const snapshotOnUsr1 = Layer.effectDiscard(Effect.gen(function*() {
  const metrics = yield* Metrics
  yield* signals("SIGUSR1").pipe(
    Stream.runForEach(() => Effect.flatMap(metrics.snapshot, Console.log)),
    Effect.forkScoped
  )
}))

const command = Command.make("tcp-proxy", flags, (input) =>
  Effect.gen(function*() {
    const config = yield* toConfig(input)
    const app = snapshotOnUsr1.pipe(
      Layer.provideMerge(TcpProxy.layer(config)),
      Layer.provide(Layer.succeed(DrainCut, nextStop))
    )
    yield* Layer.launch(app).pipe(
      Effect.provide(Logging.layer(input.logFormat, effectLevel[input.logLevel]))
    )
  })).pipe(Command.withDescription("A TCP (layer 4) proxy and load balancer built on Effect."))

const cliLayer = Layer.mergeAll(
  NodeServices.layer,
  CliConfig.layer({ builtIns: [GlobalFlag.Help, GlobalFlag.Version] }),
  CliOutput.layerPresenter({
    present: (event) =>
      event._tag === "InvalidInvocation"
        ? Console.error(`tcp-proxy: ${event.errors.map((error) => error.message).join("; ")}`)
        : CliOutput.defaultPresenter.present(event)
  })
)

/** One stderr line for a failure the user can fix; a full report only for a defect. */
const report = (cause: Cause.Cause<unknown>) =>
  Option.match(Cause.findErrorOption(cause), {
    onNone: () => Cause.hasInterruptsOnly(cause) ? Effect.void : Console.error(Cause.pretty(cause)),
    onSome: (error) =>
      CliError.isCliError(error)
        ? Effect.void // the presenter has printed it
        : error instanceof ConfigError || error instanceof ListenError || error instanceof AdminListenError
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
