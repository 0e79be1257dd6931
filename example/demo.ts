/**
 * The demo cluster behind `npm run example`: three echo backends on
 * 127.0.0.1:9001-9003 and the proxy on :4000 in front of them, each a child
 * process. Prints how to play with it; Ctrl-C (SIGINT) or SIGTERM stops
 * everything. The proxy's stdout is inherited; its stderr (the logs) is
 * forwarded as is, and watched for `listening on` to know it is up.
 */
import { type ChildProcess, spawn } from "node:child_process"
import { existsSync } from "node:fs"
import { connect } from "node:net"
import { setTimeout as sleep } from "node:timers/promises"
import { fileURLToPath } from "node:url"

const proxyMain = fileURLToPath(new URL("../dist/Main.js", import.meta.url))
const echoServer = fileURLToPath(new URL("echo-server.ts", import.meta.url))
const proxyPort = 4000
const backends: ReadonlyArray<{ readonly name: string; readonly port: number }> = [
  { name: "backend-1", port: 9001 },
  { name: "backend-2", port: 9002 },
  { name: "backend-3", port: 9003 }
]
const addressOf = (port: number): string => `127.0.0.1:${port}`

/** A started child process and what it is. */
interface Child {
  readonly name: string
  readonly process: ChildProcess
  readonly exited: Promise<void>
}

const children: Array<Child> = []
let phase: "starting" | "running" | "stopping" = "starting"

const say = (line: string): void => console.log(`[demo] ${line}`)
const running = (child: Child): boolean => child.process.exitCode === null && child.process.signalCode === null
const howItEnded = (code: number | null, signal: NodeJS.Signals | null): string =>
  signal !== null ? `signal ${signal}` : `code ${code}`

/** Stops every child still running (SIGTERM, then SIGKILL after 10s) and exits with `code`. */
const stopAll = async (code: number): Promise<never> => {
  phase = "stopping"
  for (const child of children) if (running(child)) child.process.kill("SIGTERM")
  const allExited = Promise.all(children.map((child) => child.exited)).then(() => true)
  if (!(await Promise.race([allExited, sleep(10_000, false, { ref: false })]))) {
    say("some processes did not stop within 10s; killing them")
    for (const child of children) if (running(child)) child.process.kill("SIGKILL")
    await Promise.all(children.map((child) => child.exited))
  }
  process.exit(code)
}

/** Prints one line saying what went wrong, stops the others and exits 1. */
const fail = (line: string): void => {
  if (phase === "stopping") return
  say(line)
  void stopAll(1)
}

/** Starts `node ...args` as a child named `name`, watching how it exits. */
const start = (name: string, args: ReadonlyArray<string>, stderr: "inherit" | "pipe"): Child => {
  const child = spawn(process.execPath, args, { stdio: ["ignore", "inherit", stderr] })
  const exited = new Promise<void>((resolve) => child.once("close", () => resolve()))
  const entry: Child = { name, process: child, exited }
  children.push(entry)
  child.once("error", (error) => fail(`could not start ${name}: ${error.message}`))
  // "close" rather than "exit": by then its last words on stderr have been forwarded.
  child.once("close", (code, signal) => {
    const how = howItEnded(code, signal)
    if (phase === "starting") {
      fail(`${name} exited during startup (${how}); see its error above. Stopping the others.`)
    } else if (phase === "running" && name === "proxy") {
      fail(`the proxy exited unexpectedly (${how}); stopping the backends.`)
    } else if (phase === "running") {
      say(`${name} (pid ${child.pid}) exited (${how}); watch the proxy mark it UNHEALTHY and route around it.`)
    }
  })
  return entry
}

/** Whether something accepts a TCP connection on 127.0.0.1:`port` right now. */
const accepts = (port: number): Promise<boolean> =>
  new Promise((resolve) => {
    const socket = connect({ host: "127.0.0.1", port })
    socket.once("connect", () => {
      socket.destroy()
      resolve(true)
    })
    socket.once("error", () => resolve(false))
  })

/** Polls `port` until it accepts a connection: false if `child` exits or 50 attempts (~5s) fail. */
const waitForPort = async (child: Child, port: number): Promise<boolean> => {
  for (let attempt = 0; attempt < 50; attempt++) {
    if (!running(child)) return child.exited.then(() => false) // its "close" handler reports it
    if (await accepts(port)) return true
    await sleep(100)
  }
  return false
}

/** Forwards the proxy's stderr; true at its `listening on` line, false after 10s without it. */
const waitForListening = (proxy: Child): Promise<boolean> =>
  new Promise((resolve) => {
    const stderr = proxy.process.stderr
    if (stderr === null) return resolve(false)
    stderr.pipe(process.stderr)
    let seen = ""
    const onData = (chunk: Buffer): void => {
      seen = (seen + chunk.toString("utf8")).slice(-4096)
      if (seen.includes("listening on")) done(true)
    }
    const timer = setTimeout(() => done(false), 10_000)
    const done = (ok: boolean): void => {
      clearTimeout(timer)
      stderr.off("data", onData)
      resolve(ok)
    }
    stderr.on("data", onData)
  })

/** A started backend: its child process and port. */
interface Backend {
  readonly child: Child
  readonly port: number
}

const banner = (proxy: Child, started: ReadonlyArray<Backend>): string => {
  const rows = started.map(({ child, port }) => `    ${child.name}  ${addressOf(port)}  pid ${child.process.pid}`)
  return [
    "",
    `  Demo cluster is up: the proxy (pid ${proxy.process.pid}) listens on :${proxyPort} in front of:`,
    ...rows,
    "",
    "  Try it, in another terminal:",
    `    nc localhost ${proxyPort}          (or: node example/client.ts)`,
    "    type lines: each reply is prefixed by the backend that served it;",
    "    open a few connections and the proxy spreads them over the backends.",
    "",
    "  Kill a backend to watch the proxy log it as UNHEALTHY (3 failed checks, 2s apart)",
    "  and send it no more traffic:",
    `    kill ${started[1]?.child.process.pid}`,
    "  Print the proxy's metrics snapshot:",
    `    kill -USR1 ${proxy.process.pid}`,
    "  Ctrl-C here stops everything.",
    ""
  ].join("\n")
}

const onSignal = (signal: NodeJS.Signals): void => {
  if (phase === "stopping") {
    // A second Ctrl-C: pass it on, which cuts the proxy's drain short.
    for (const child of children) if (running(child)) child.process.kill("SIGTERM")
    return
  }
  say(`${signal}: stopping the proxy and the backends`)
  void stopAll(0)
}
process.on("SIGINT", onSignal)
process.on("SIGTERM", onSignal)

const main = async (): Promise<void> => {
  if (!existsSync(proxyMain)) {
    say("dist/Main.js is missing: run `npm install` (it builds the proxy), then `npm run example` again.")
    process.exit(1)
  }
  for (const port of [...backends.map((backend) => backend.port), proxyPort]) {
    if (await accepts(port)) {
      say(`port ${port} is already in use on 127.0.0.1 (another demo still running?); stop it and retry.`)
      process.exit(1)
    }
  }

  const started: ReadonlyArray<Backend> = backends.map(({ name, port }) => ({
    child: start(name, [echoServer, String(port), name], "inherit"),
    port
  }))
  for (const { child, port } of started) {
    if (!(await waitForPort(child, port))) {
      return fail(`${child.name} did not accept connections on ${addressOf(port)}; stopping the others.`)
    }
  }

  if (phase !== "starting") return // a signal arrived meanwhile
  // A demo's share of connections: no warning about the open-file limit on a machine with a low one.
  const proxyArgs = [proxyMain, "--laddr", `:${proxyPort}`, "--health-interval", "2s", "--max-connections", "1000"]
  const proxy = start("proxy", [...proxyArgs, ...backends.map(({ port }) => addressOf(port))], "pipe")
  if (!(await waitForListening(proxy))) {
    return fail(`the proxy did not start listening on :${proxyPort}; stopping the backends.`)
  }
  if (phase !== "starting") return
  phase = "running"
  console.log(banner(proxy, started))
}

void main()
