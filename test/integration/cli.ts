/**
 * Runs the built CLI (`dist/Main.js`) as a child process for tests.
 */
import { type ChildProcess, spawn } from "node:child_process"
import { fileURLToPath } from "node:url"
import { Effect, Option } from "effect"
import { eventually } from "./helpers.ts"

const main = fileURLToPath(new URL("../../dist/Main.js", import.meta.url))

/** A running `tcp-proxy` process and what it has printed so far. */
export interface CliProcess {
  readonly child: ChildProcess
  readonly stdout: () => string
  readonly stderr: () => string
  /** Resolves with the exit code (or the signal's name) once the process has exited. */
  readonly exit: Effect.Effect<number | string>
}

/** How to start the process. */
export interface SpawnOptions {
  /** The open-file limit (`ulimit -n`) of the process. */
  readonly maxFiles?: number
  /** Options for node itself, before the script. */
  readonly nodeArgs?: ReadonlyArray<string>
  /** Leave stdout unread (a reader that never comes): `stdout()` stays empty. */
  readonly unreadStdout?: boolean
}

/** Starts `tcp-proxy args...`; killed (SIGKILL) when the scope ends if still running. */
export const spawnCli = (args: ReadonlyArray<string>, options: SpawnOptions = {}) =>
  Effect.acquireRelease(
    Effect.sync((): CliProcess => {
      const command = [process.execPath, ...(options.nodeArgs ?? []), main, ...args]
      const child = options.maxFiles === undefined
        ? spawn(command[0]!, command.slice(1), { stdio: ["ignore", "pipe", "pipe"] })
        : spawn("/bin/sh", ["-c", `ulimit -n ${options.maxFiles} && exec "$@"`, "sh", ...command], {
          stdio: ["ignore", "pipe", "pipe"]
        })
      let stdout = ""
      let stderr = ""
      if (options.unreadStdout === true) child.stdout.pause()
      else child.stdout.on("data", (chunk: Buffer) => (stdout += chunk.toString()))
      child.stderr.on("data", (chunk: Buffer) => (stderr += chunk.toString()))
      const exited = new Promise<number | string>((resolve) =>
        child.once("exit", (code, signal) => resolve(code ?? signal ?? "unknown"))
      )
      return { child, stdout: () => stdout, stderr: () => stderr, exit: Effect.promise(() => exited) }
    }),
    ({ child }) => Effect.sync(() => child.exitCode === null && child.signalCode === null && child.kill("SIGKILL"))
  )

/** Runs `tcp-proxy args...` to its end; returns exit code and output. */
export const runCli = (args: ReadonlyArray<string>) =>
  Effect.scoped(Effect.gen(function*() {
    const cli = yield* spawnCli(args)
    const code = yield* cli.exit
    return { code, stdout: cli.stdout(), stderr: cli.stderr() }
  }))

/** Waits for the `listening on HOST:PORT` log line and returns the port. */
export const listeningPort = (cli: CliProcess) =>
  eventually(
    "the proxy to listen",
    Effect.sync(() => Option.map(Option.fromNullishOr(/listening on [^ "]*:(\d+)/.exec(cli.stderr())), (m) => Number(m[1])))
  )
