/**
 * What the bench and the soak both need of the machine: free ports, the
 * processes they start (each in its own group, killed when they exit), a
 * process's CPU time, memory, descriptors and children, and whether a tool
 * is installed. Linux only (`/proc`).
 */
import { type ChildProcess, spawn, spawnSync } from "node:child_process"
import * as Fs from "node:fs"
import * as Net from "node:net"

/** A line on stderr with the time of day. */
export const log = (message: string) => console.error(`[${new Date().toISOString().slice(11, 19)}] ${message}`)

export const sleep = (ms: number) => new Promise<void>((resolve) => setTimeout(resolve, ms))

/**
 * A free TCP port on 127.0.0.1, below the kernel's ephemeral range (so no
 * outgoing connection of a churn run can be holding it by the time it is
 * bound), checked by binding it, and never handed out twice in a run.
 */
const used = new Set<number>()
const ephemeralLow = (() => {
  try {
    return Number(Fs.readFileSync("/proc/sys/net/ipv4/ip_local_port_range", "utf8").trim().split(/\s+/)[0]) || 32768
  } catch {
    return 32768
  }
})()
export const nextPort = async (): Promise<number> => {
  const low = 10_000
  const high = Math.max(low + 1000, ephemeralLow)
  for (let attempt = 0; attempt < 200; attempt++) {
    const port = low + Math.floor(Math.random() * (high - low))
    if (used.has(port)) continue
    const free = await new Promise<boolean>((resolve) => {
      const server = Net.createServer()
      server.once("error", () => resolve(false))
      server.listen(port, "127.0.0.1", () => server.close(() => resolve(true)))
    })
    if (free) {
      used.add(port)
      return port
    }
  }
  throw new Error("no free port found")
}

const clockTicks = Number(spawnSync("getconf", ["CLK_TCK"], { encoding: "utf8" }).stdout.trim()) || 100

/** User + system CPU time of a process (all its threads), in seconds. */
export const cpuSeconds = (pid: number): number => {
  const stat = Fs.readFileSync(`/proc/${pid}/stat`, "utf8")
  const fields = stat.slice(stat.lastIndexOf(")") + 2).split(" ")
  return (Number(fields[11]) + Number(fields[12])) / clockTicks
}

/** A process's resident memory, in KiB. */
export const rssKiB = (pid: number): number => {
  const status = Fs.readFileSync(`/proc/${pid}/status`, "utf8")
  return Number(/VmRSS:\s+(\d+)/.exec(status)?.[1] ?? NaN)
}

/** A process's open file descriptors. */
export const fdCount = (pid: number): number => Fs.readdirSync(`/proc/${pid}/fd`).length

/** A process's child processes. */
export const children = (pid: number): Array<number> => {
  try {
    return Fs.readFileSync(`/proc/${pid}/task/${pid}/children`, "utf8").trim().split(/\s+/).filter(Boolean).map(Number)
  } catch {
    return []
  }
}

/** Whether a command is on the PATH. */
export const has = (tool: string): boolean => spawnSync("sh", ["-c", `command -v ${tool}`], { stdio: "ignore" }).status === 0

// ---------------------------------------------------------------- processes

/** A started process and how it ended. */
export interface Proc {
  readonly name: string
  readonly pid: number
  readonly child: ChildProcess
  readonly exited: Promise<number | null>
  done: boolean
  code: number | null
  signal: NodeJS.Signals | null
}

const running = new Set<Proc>()

/** Raises the open-file limit for the child, then becomes it (`exec`), so its pid is the process's own. */
const ULIMIT = "ulimit -n 65536 2>/dev/null || ulimit -n \"$(ulimit -Hn)\"; exec \"$0\" \"$@\""

/** Where a started process's output goes, and how it runs. */
export interface StartOptions {
  /** The file stdout appends to (and stderr, unless `stderr` is given). */
  readonly stdout: string
  readonly stderr?: string
  readonly cwd: string
  readonly env?: NodeJS.ProcessEnv
  /** stdin and stdout as pipes for the caller (stderr still to the file). */
  readonly pipe?: boolean
}

/**
 * Starts `command args` through bash (for the ulimit) in its own process
 * group, killed when this process exits.
 */
export const start = (name: string, command: string, args: ReadonlyArray<string>, options: StartOptions): Proc => {
  const out = Fs.openSync(options.stdout, "a")
  const err = options.stderr === undefined ? out : Fs.openSync(options.stderr, "a")
  const child = spawn("bash", ["-c", ULIMIT, command, ...args], {
    cwd: options.cwd,
    env: options.env ?? process.env,
    detached: true,
    stdio: options.pipe === true ? ["pipe", "pipe", err] : ["ignore", out, err]
  })
  Fs.closeSync(out)
  if (err !== out) Fs.closeSync(err)
  if (child.pid === undefined) throw new Error(`cannot start ${name}`)
  const proc: Proc = {
    name,
    pid: child.pid,
    child,
    done: false,
    code: null,
    signal: null,
    exited: new Promise((resolve) => {
      child.on("exit", (code, signal) => {
        proc.done = true
        proc.code = code
        proc.signal = signal
        running.delete(proc)
        resolve(code)
      })
      child.on("error", () => {
        proc.done = true
        running.delete(proc)
        resolve(null)
      })
    })
  }
  running.add(proc)
  return proc
}

/** Sends `signal` to the process's group. */
export const signalGroup = (proc: Proc, signal: NodeJS.Signals) => {
  try {
    process.kill(-proc.pid, signal)
  } catch {
    // already gone
  }
}

/** SIGTERM to the process group, SIGKILL after `graceMs`; resolves when it has exited, with how long it took. */
export const stop = async (proc: Proc, graceMs = 15_000): Promise<{ readonly ms: number; readonly killed: boolean }> => {
  const begin = Date.now()
  if (proc.done) return { ms: 0, killed: false }
  signalGroup(proc, "SIGTERM")
  const timedOut = await Promise.race([proc.exited.then(() => false), sleep(graceMs).then(() => true)])
  if (timedOut && !proc.done) {
    signalGroup(proc, "SIGKILL")
    await proc.exited
    return { ms: Date.now() - begin, killed: true }
  }
  return { ms: Date.now() - begin, killed: false }
}

const killAll = () => {
  for (const proc of running) signalGroup(proc, "SIGKILL")
}
process.on("exit", killAll)
for (const signal of ["SIGINT", "SIGTERM", "SIGHUP"] as const) {
  process.on(signal, () => {
    log(`${signal}: stopping everything`)
    killAll()
    process.exit(130)
  })
}
