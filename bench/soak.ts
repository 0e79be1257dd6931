/**
 * The soak test: `npm run soak [-- --minutes N]` (default 5 minutes).
 *
 * A bounded, rerunnable run over loopback (127.0.0.1) of the built proxy
 * (dist/Main.js) in front of three echo backends (bench/soak-backend.ts),
 * under a steady mixed load (bench/soak-load.ts: keep-alive echo, connection
 * churn, large transfers), while the config file is swapped and reloaded
 * every 20 s and a backend is killed (SIGKILL) every 30 s and restarted 4 s
 * later. Every 10 s it samples the proxy's RSS, heap after a full GC
 * (bench/probe.ts), open descriptors, active connections and CLOSE-WAIT
 * sockets. At the end it stops the load, lets the proxy drain, checks
 * integrity, failures, accounting, clean-up, memory growth, health changes,
 * the log and the shutdown, prints a table of the
 * samples and PASS/FAIL per check, and exits 0 only if every check passed.
 * Results go to bench/results/soak-<time>/. RELIABILITY.md explains the checks.
 *
 * Every process it starts is in its own process group and is stopped at the
 * end, on failure and on Ctrl-C.
 */
import { spawnSync } from "node:child_process"
import * as Fs from "node:fs"
import * as Http from "node:http"
import * as Net from "node:net"
import * as Os from "node:os"
import * as Path from "node:path"
import { fileURLToPath } from "node:url"
import { type Failure, Load } from "./soak-load.ts"
import {
  cpuSeconds,
  fdCount,
  log,
  nextPort,
  type Proc,
  rssKiB,
  signalGroup,
  sleep,
  start as startProcess,
  type StartOptions,
  stop
} from "./system.ts"

const benchDir = Path.dirname(fileURLToPath(import.meta.url))
const root = Path.dirname(benchDir)

// ---------------------------------------------------------------- the plan

const SAMPLE_EVERY_MS = 10_000
const FIRST_RELOAD_MS = 5_000
const FIRST_KILL_MS = 8_000
const RESTART_AFTER_MS = 4_000
/** Samples before this are not used for the memory slopes (JIT, caches, pools filling up). */
const WARMUP_MS = 120_000
/** The memory check needs at least this many samples after the warm-up (a run of 4 minutes or more). */
const MIN_SLOPE_SAMPLES = 12
/** Heap after a full GC may grow at most this fast (KiB per minute) after the warm-up. */
const HEAP_SLOPE_MAX = 200
/** RSS may grow at most this fast (KiB per minute) after the warm-up. */
const RSS_SLOPE_MAX = 10_240
/** Descriptors after the drain may exceed the count before the load by at most this. */
const FD_SLACK = 3
/** A client failure counts as caused by a kill when it happens this soon after it (ms). */
const KILL_WINDOW_MS = 5_000

// ---------------------------------------------------------------- options

interface Options {
  readonly minutes: number
  readonly keepalive: number
  readonly churnRate: number
  readonly bulkMiB: number
  readonly bulkEvery: number
  readonly reloadEvery: number
  readonly killEvery: number
  readonly leak: number
  readonly workers: number
}

const usage = `usage: npm run soak -- [options]      (or: node bench/soak.ts [options])

  --minutes N        how long the load runs; fractions allowed (default 5)
  --keepalive N      long-lived echo connections             (default 16)
  --churn-rate N     short connections per second            (default 25)
  --bulk-mib N       size of each large transfer, MiB        (default 50)
  --bulk-every S     seconds between large transfers         (default 15)
  --reload-every S   seconds between config swaps + SIGHUP; 0: none (default 20)
  --kill-every S     seconds between backend kills; 0: none  (default 30)
  --leak BYTES       test the soak itself: make the proxy keep BYTES of heap
                     per accepted connection (the memory check must FAIL)
  --workers N        run the proxy with --workers N (default 1); the heap
                     figures are then the control part's, RSS the process's
  --help

Needs dist/ (npm run build). Results go to bench/results/soak-<time>/.
Exit code 0 only if every check passed. See RELIABILITY.md.
`

const parseOptions = (argv: ReadonlyArray<string>): Options => {
  let minutes = 5
  let keepalive = 16
  let churnRate = 25
  let bulkMiB = 50
  let bulkEvery = 15
  let reloadEvery = 20
  let killEvery = 30
  let leak = 0
  let workers = 1
  const number = (flag: string, value: string | undefined, min: number): number => {
    const n = Number(value)
    if (value === undefined || value.trim() === "" || !Number.isFinite(n) || n < min) fail(`${flag} needs a number >= ${min}`)
    return n
  }
  for (let i = 0; i < argv.length; i++) {
    const [flag, inline] = argv[i]!.split(/=(.*)/s, 2) as [string, string | undefined]
    const value = () => inline ?? argv[++i]
    switch (flag) {
      case "--minutes":
        minutes = number(flag, value(), 0.05)
        break
      case "--keepalive":
        keepalive = Math.floor(number(flag, value(), 0))
        break
      case "--churn-rate":
        churnRate = number(flag, value(), 0)
        break
      case "--bulk-mib":
        bulkMiB = number(flag, value(), 0)
        break
      case "--bulk-every":
        bulkEvery = number(flag, value(), 1)
        break
      case "--reload-every":
        reloadEvery = number(flag, value(), 0)
        break
      case "--kill-every":
        killEvery = number(flag, value(), 0)
        break
      case "--leak":
        leak = Math.floor(number(flag, value(), 0))
        break
      case "--workers":
        workers = Math.floor(number(flag, value(), 1))
        break
      case "--help":
      case "-h":
        process.stdout.write(usage)
        process.exit(0)
        break
      default:
        fail(`unknown option ${flag}\n${usage}`)
    }
  }
  if (reloadEvery > 0 && reloadEvery < 1) fail("--reload-every needs 0 or a number >= 1")
  if (killEvery > 0 && killEvery < 10) fail("--kill-every needs 0 or a number >= 10 (a killed backend is restarted 4 s later)")
  return { minutes, keepalive, churnRate, bulkMiB, bulkEvery, reloadEvery, killEvery, leak, workers }
}

function fail(message: string): never {
  console.error(`soak: ${message}`)
  process.exit(2)
}


// ---------------------------------------------------------------- processes

/** Starts a process in the repository, its output appended to the files. */
const start = (name: string, command: string, args: ReadonlyArray<string>, options: Omit<StartOptions, "cwd">): Proc =>
  startProcess(name, command, args, { ...options, cwd: root })

const sleepUntil = (at: number) => sleep(Math.max(0, at - Date.now()))

/** Polls TCP connects to 127.0.0.1:port until one succeeds (only for ports that are not the proxy's). */
const waitPort = async (port: number, proc: Proc, timeoutMs = 20_000): Promise<void> => {
  const deadline = Date.now() + timeoutMs
  for (;;) {
    const ok = await new Promise<boolean>((resolve) => {
      const socket = Net.connect({ host: "127.0.0.1", port }, () => {
        socket.destroy()
        resolve(true)
      })
      socket.on("error", () => resolve(false))
    })
    if (ok) return
    if (proc.done) throw new Error(`${proc.name} exited before listening on ${port}`)
    if (Date.now() > deadline) throw new Error(`nothing listens on 127.0.0.1:${port} after ${timeoutMs} ms`)
    await sleep(50)
  }
}

// ---------------------------------------------------------------- /proc and the proxy's endpoints


const socketInodes = (pid: number): Set<string> => {
  const inodes = new Set<string>()
  for (const fd of Fs.readdirSync(`/proc/${pid}/fd`)) {
    try {
      const match = /^socket:\[(\d+)\]$/.exec(Fs.readlinkSync(`/proc/${pid}/fd/${fd}`))
      if (match !== null) inodes.add(match[1]!)
    } catch {
      // closed meanwhile
    }
  }
  return inodes
}

const TCP_STATES: Record<string, string> = {
  "01": "ESTABLISHED",
  "02": "SYN-SENT",
  "03": "SYN-RECV",
  "04": "FIN-WAIT-1",
  "05": "FIN-WAIT-2",
  "06": "TIME-WAIT",
  "07": "CLOSE",
  "08": "CLOSE-WAIT",
  "09": "LAST-ACK",
  "0A": "LISTEN",
  "0B": "CLOSING"
}

interface TcpSocket {
  readonly local: string
  readonly remote: string
  readonly state: string
  readonly inode: string
}

const hexAddress = (text: string): string => {
  const [ip, port] = text.split(":") as [string, string]
  const address = ip.length === 8
    ? [3, 2, 1, 0].map((i) => parseInt(ip.slice(i * 2, i * 2 + 2), 16)).join(".")
    : `[${ip}]`
  return `${address}:${parseInt(port, 16)}`
}

/** The TCP sockets of the network namespace (/proc/net/tcp and tcp6). */
const tcpSockets = (): Array<TcpSocket> => {
  const sockets: Array<TcpSocket> = []
  for (const file of ["/proc/net/tcp", "/proc/net/tcp6"]) {
    let text: string
    try {
      text = Fs.readFileSync(file, "utf8")
    } catch {
      continue
    }
    for (const line of text.split("\n").slice(1)) {
      const fields = line.trim().split(/\s+/)
      if (fields.length < 10) continue
      sockets.push({ local: hexAddress(fields[1]!), remote: hexAddress(fields[2]!), state: TCP_STATES[fields[3]!] ?? fields[3]!, inode: fields[9]! })
    }
  }
  return sockets
}

/** The proxy's own sockets in CLOSE-WAIT (the peer has closed, the proxy has not). */
const closeWaits = (pid: number): Array<TcpSocket> => {
  const inodes = socketInodes(pid)
  return tcpSockets().filter((s) => s.state === "CLOSE-WAIT" && inodes.has(s.inode))
}

/** Polls /proc/net/tcp until `pid` has a socket listening on 127.0.0.1:port (no connection is made). */
const waitListen = async (port: number, proc: Proc, timeoutMs = 20_000): Promise<void> => {
  const deadline = Date.now() + timeoutMs
  for (;;) {
    if (proc.done) throw new Error(`${proc.name} exited (code ${proc.code}) before listening on ${port}`)
    const inodes = socketInodes(proc.pid)
    if (tcpSockets().some((s) => s.state === "LISTEN" && s.local === `127.0.0.1:${port}` && inodes.has(s.inode))) return
    if (Date.now() > deadline) throw new Error(`${proc.name} does not listen on 127.0.0.1:${port} after ${timeoutMs} ms`)
    await sleep(50)
  }
}

const httpGet = (port: number, path: string, timeoutMs = 5_000): Promise<{ readonly status: number; readonly body: string }> =>
  new Promise((resolve, reject) => {
    const request = Http.get({ host: "127.0.0.1", port, path, agent: false, timeout: timeoutMs }, (response) => {
      let body = ""
      response.setEncoding("utf8")
      response.on("data", (chunk: string) => (body += chunk))
      response.on("end", () => resolve({ status: response.statusCode ?? 0, body }))
      response.on("error", reject)
    })
    request.on("timeout", () => request.destroy(new Error(`GET ${path}: no answer within ${timeoutMs} ms`)))
    request.on("error", reject)
  })

/** `/metrics` as a map from the series (`name` or `name{labels}`) to its value. */
const metrics = async (port: number): Promise<Map<string, number>> => {
  const { status, body } = await httpGet(port, "/metrics")
  if (status !== 200) throw new Error(`GET /metrics: ${status}`)
  const series = new Map<string, number>()
  for (const line of body.split("\n")) {
    if (line === "" || line.startsWith("#")) continue
    const space = line.lastIndexOf(" ")
    series.set(line.slice(0, space), Number(line.slice(space + 1)))
  }
  return series
}

/** bench/probe.ts in the proxy: a full GC, then `process.memoryUsage()`. */
const probe = (port: number): Promise<NodeJS.MemoryUsage> =>
  new Promise((resolve, reject) => {
    let text = ""
    const socket = Net.connect({ host: "127.0.0.1", port })
    socket.setEncoding("utf8")
    socket.setTimeout(30_000, () => socket.destroy(new Error("probe: no answer within 30 s")))
    socket.on("data", (chunk: string) => (text += chunk))
    socket.on("end", () => {
      try {
        resolve(JSON.parse(text))
      } catch (error) {
        reject(error)
      }
    })
    socket.on("error", reject)
  })

// ---------------------------------------------------------------- the proxy's log

interface Access {
  readonly at: number
  readonly clientPort: number
  readonly backend: string | undefined
  readonly end: string
}

const FIELD = /(\w+)=("(?:[^"\\]|\\.)*"|\S*)/g

const fields = (line: string): Map<string, string> => {
  const map = new Map<string, string>()
  for (const match of line.matchAll(FIELD)) {
    const raw = match[2]!
    map.set(match[1]!, raw.startsWith("\"") ? raw.slice(1, -1).replace(/\\(.)/g, "$1") : raw)
  }
  return map
}

interface LogSummary {
  readonly closedLines: number
  readonly accesses: Array<Access>
  readonly reloaded: number
  readonly reloadFailed: Array<string>
  readonly errors: Array<string>
  readonly warnings: number
  readonly unparsed: number
  readonly ends: Record<string, number>
  /** `backend ADDR now UNHEALTHY` / `now HEALTHY` lines per backend. */
  readonly health: Record<string, { unhealthy: number; healthy: number }>
}

/** Reads the proxy's stderr (text log format). */
const readLog = (file: string): LogSummary => {
  const text = Fs.readFileSync(file, "utf8")
  const accesses: Array<Access> = []
  const reloadFailed: Array<string> = []
  const errors: Array<string> = []
  const ends: Record<string, number> = {}
  const health: Record<string, { unhealthy: number; healthy: number }> = {}
  let closedLines = 0
  let reloaded = 0
  let warnings = 0
  let unparsed = 0
  for (const line of text.split("\n")) {
    if (line === "") continue
    if (line.includes("message=\"connection closed\"")) {
      closedLines++
      const f = fields(line)
      const at = Date.parse(f.get("timestamp") ?? "")
      const clientPort = Number((f.get("client") ?? "").split(":").at(-1))
      const end = f.get("end") ?? "?"
      ends[end] = (ends[end] ?? 0) + 1
      if (Number.isFinite(at) && clientPort > 0) accesses.push({ at, clientPort, backend: f.get("backend"), end })
      else unparsed++
      continue
    }
    if (line.includes("message=\"config reloaded")) reloaded++
    const change = /message="backend (\S+) now (UNHEALTHY|HEALTHY)"/.exec(line)
    if (change !== null) {
      const counts = (health[change[1]!] ??= { unhealthy: 0, healthy: 0 })
      if (change[2] === "UNHEALTHY") counts.unhealthy++
      else counts.healthy++
    }
    if (line.includes("config reload failed")) reloadFailed.push(line)
    if (/\blevel=(ERROR|FATAL)\b/.test(line)) errors.push(line)
    else if (/\blevel=WARN\b/.test(line)) warnings++
    else if (!/\blevel=\w+/.test(line)) errors.push(line) // a line that is no log line: a crash, a stack trace
  }
  return { closedLines, accesses, reloaded, reloadFailed, errors, warnings, unparsed, ends, health }
}

const countClosedLines = (file: string): number => {
  const text = Fs.readFileSync(file, "utf8")
  let n = 0
  for (let i = text.indexOf("message=\"connection closed\""); i >= 0; i = text.indexOf("message=\"connection closed\"", i + 1)) n++
  return n
}

// ---------------------------------------------------------------- samples

interface Sample {
  /** Seconds since the load started (0 and below: before it; the last one: after the drain). */
  readonly t: number
  readonly phase: "before" | "load" | "drained"
  readonly rssKiB: number
  readonly heapKiB: number
  readonly heapTotalKiB: number
  readonly externalKiB: number
  readonly arrayBuffersKiB: number
  readonly fds: number
  readonly active: number
  readonly closeWait: number
  readonly connectionsTotal: number
  readonly closedLines: number
  readonly proxyCpuS: number
  readonly keepaliveMessages: number
  readonly churnVerified: number
  readonly bulkVerified: number
  readonly failures: number
  readonly corruptions: number
}

interface Kill {
  readonly backend: string
  readonly killedAt: number
  restartedAt: number | undefined
}

interface Check {
  readonly name: string
  readonly status: "PASS" | "FAIL" | "SKIP"
  readonly detail: string
}

/** Least-squares slope of y over x. */
const slope = (points: ReadonlyArray<readonly [number, number]>): number => {
  const n = points.length
  const mx = points.reduce((s, [x]) => s + x, 0) / n
  const my = points.reduce((s, [, y]) => s + y, 0) / n
  let num = 0
  let den = 0
  for (const [x, y] of points) {
    num += (x - mx) * (y - my)
    den += (x - mx) ** 2
  }
  return den === 0 ? 0 : num / den
}

/** A markdown table; `left` columns are left-aligned, the others right-aligned (numbers). */
const markdownTable = (header: ReadonlyArray<string>, rows: ReadonlyArray<ReadonlyArray<string>>, left: ReadonlyArray<number> = [0]): string => {
  const widths = header.map((h, i) => Math.max(h.length, ...rows.map((r) => r[i]!.length)))
  const pad = (cells: ReadonlyArray<string>) =>
    "| " + cells.map((c, i) => (left.includes(i) ? c.padEnd(widths[i]!) : c.padStart(widths[i]!))).join(" | ") + " |"
  return [
    pad(header),
    "| " + widths.map((w, i) => (left.includes(i) ? "-".repeat(w) : "-".repeat(w - 1) + ":")).join(" | ") + " |",
    ...rows.map(pad)
  ].join("\n")
}

const mib = (kib: number) => (kib / 1024).toFixed(1)

const sampleTable = (samples: ReadonlyArray<Sample>): string =>
  markdownTable(
    ["t (s)", "RSS MiB", "heap MiB", "heap total MiB", "fds", "active", "CLOSE-WAIT", "conns", "log lines", "ka msgs", "churn", "bulk", "fail", "corrupt"],
    samples.map((s) => [
      s.phase === "drained" ? `${s.t} drained` : s.phase === "before" ? `${s.t} before` : String(s.t),
      mib(s.rssKiB),
      mib(s.heapKiB),
      mib(s.heapTotalKiB),
      String(s.fds),
      String(s.active),
      String(s.closeWait),
      String(s.connectionsTotal),
      String(s.closedLines),
      String(s.keepaliveMessages),
      String(s.churnVerified),
      String(s.bulkVerified),
      String(s.failures),
      String(s.corruptions)
    ])
  )

// ---------------------------------------------------------------- configs

const configText = (variant: "a" | "b", laddr: string, backends: ReadonlyArray<string>): string => {
  const weights = variant === "a" ? [3, 1, 1] : [1, 2, 3]
  return [
    `# soak config ${variant.toUpperCase()}: written by bench/soak.ts`,
    `laddr: "${laddr}"`,
    `lb: ${variant === "a" ? "round-robin" : "least-conn"}`,
    "backends:",
    ...backends.map((b, i) => `  - { address: "${b}", weight: ${weights[i]} }`),
    ""
  ].join("\n")
}

/** Replaces the file at once (write + rename), so neither a SIGHUP nor the proxy's file watch reads half of it. */
const replaceFile = (file: string, text: string) => {
  const tmp = `${file}.tmp-${process.pid}`
  Fs.writeFileSync(tmp, text)
  Fs.renameSync(tmp, file)
}

// ---------------------------------------------------------------- machine

const machine = () => {
  const git = (args: ReadonlyArray<string>) => spawnSync("git", args, { cwd: root, encoding: "utf8" }).stdout?.trim() ?? ""
  return {
    nproc: Os.availableParallelism(),
    cpu: /model name\s*:\s*(.*)/.exec(Fs.readFileSync("/proc/cpuinfo", "utf8"))?.[1] ?? "?",
    kernel: Os.release(),
    node: process.version,
    loadavg: Os.loadavg(),
    commit: git(["rev-parse", "--short", "HEAD"]),
    dirty: git(["status", "--porcelain", "--", "src"]).split("\n").filter(Boolean).length,
    date: new Date().toISOString()
  }
}

// ---------------------------------------------------------------- main

const main = async () => {
  const options = parseOptions(process.argv.slice(2))
  const dist = Path.join(root, "dist", "Main.js")
  if (!Fs.existsSync(dist)) fail("dist/Main.js is missing: run `npm run build` first")

  const stamp = new Date().toISOString().replace(/[:.]/g, "-").slice(0, 19)
  const out = Path.join(benchDir, "results", `soak-${stamp}`)
  const confDir = Path.join(out, "conf")
  Fs.mkdirSync(confDir, { recursive: true })
  const info = machine()
  const durationMs = Math.round(options.minutes * 60_000)
  log(`soak: ${options.minutes} min; results in ${Path.relative(root, out)}; commit ${info.commit}${info.dirty > 0 ? ` + ${info.dirty} changed file(s) in src` : ""}; ${info.nproc} CPU(s), Node ${info.node}`)

  // Backends.
  const backendPorts = [await nextPort(), await nextPort(), await nextPort()]
  const backendAddresses = backendPorts.map((p) => `127.0.0.1:${p}`)
  const backendLog = Path.join(out, "backends.log")
  const startBackend = (i: number) =>
    start(`backend-${i + 1}`, process.execPath, [Path.join(benchDir, "soak-backend.ts"), String(backendPorts[i])], { stdout: backendLog })
  const backends = backendPorts.map((_, i) => startBackend(i))
  for (const [i, proc] of backends.entries()) await waitPort(backendPorts[i]!, proc)

  // The proxy.
  const [proxyPort, metricsPort, probePort] = [await nextPort(), await nextPort(), await nextPort()] as const
  const laddr = `127.0.0.1:${proxyPort}`
  const configs = { a: configText("a", laddr, backendAddresses), b: configText("b", laddr, backendAddresses) }
  Fs.writeFileSync(Path.join(confDir, "a.yaml"), configs.a)
  Fs.writeFileSync(Path.join(confDir, "b.yaml"), configs.b)
  const configFile = Path.join(confDir, "proxy.yaml")
  replaceFile(configFile, configs.a)
  const stderrFile = Path.join(out, "proxy.stderr.log")
  const proxyArgs = [
    "--expose-gc",
    "--import",
    "./bench/probe.ts",
    ...(options.leak > 0 ? ["--import", "./bench/soak-leak.ts"] : []),
    "dist/Main.js",
    "--config",
    configFile,
    "--metrics-addr",
    `127.0.0.1:${metricsPort}`,
    "--log-level",
    "info",
    "--health-interval",
    "1s",
    ...(options.workers > 1 ? ["--workers", String(options.workers)] : [])
  ]
  Fs.writeFileSync(Path.join(out, "proxy.command"), `BENCH_PROBE_PORT=${probePort}${options.leak > 0 ? ` SOAK_LEAK_BYTES=${options.leak}` : ""} node ${proxyArgs.join(" ")}\n`)
  const proxy = start("proxy", process.execPath, proxyArgs, {
    stdout: Path.join(out, "proxy.stdout.log"),
    stderr: stderrFile,
    env: { ...process.env, BENCH_PROBE_PORT: String(probePort), SOAK_LEAK_BYTES: String(options.leak) }
  })
  await waitListen(proxyPort, proxy)
  await waitListen(metricsPort, proxy)
  await waitListen(probePort, proxy)
  {
    const deadline = Date.now() + 20_000
    for (;;) {
      const { body } = await httpGet(metricsPort, "/backends")
      const states = (JSON.parse(body) as { backends: Array<{ state: string }> }).backends.map((b) => b.state)
      if (states.length === 3 && states.every((s) => s === "HEALTHY")) break
      if (Date.now() > deadline) throw new Error(`backends not all HEALTHY after 20 s: ${body}`)
      await sleep(200)
    }
  }
  log(`proxy pid ${proxy.pid} on ${laddr}, metrics on 127.0.0.1:${metricsPort}; backends ${backendAddresses.join(", ")}`)

  const load = new Load({
    port: proxyPort,
    keepalive: options.keepalive,
    churnRate: options.churnRate,
    bulkBytes: Math.round(options.bulkMiB * 1024 * 1024),
    bulkEveryMs: options.bulkEvery * 1000
  })
  const samples: Array<Sample> = []
  let t0 = Date.now()
  const soakCpu0 = process.cpuUsage()

  const takeSample = async (phase: Sample["phase"]): Promise<Sample> => {
    if (proxy.done) throw new Error(`the proxy exited (code ${proxy.code}, signal ${proxy.signal}) during the run; see ${Path.relative(root, stderrFile)}`)
    const fds = fdCount(proxy.pid)
    const closeWait = closeWaits(proxy.pid).length
    const series = await metrics(metricsPort)
    const closedLines = countClosedLines(stderrFile)
    const memory = await probe(probePort)
    const sample: Sample = {
      t: Math.round((Date.now() - t0) / 1000),
      phase,
      rssKiB: rssKiB(proxy.pid),
      heapKiB: Math.round(memory.heapUsed / 1024),
      heapTotalKiB: Math.round(memory.heapTotal / 1024),
      externalKiB: Math.round(memory.external / 1024),
      arrayBuffersKiB: Math.round(memory.arrayBuffers / 1024),
      fds,
      active: series.get("tcp_proxy_connections_active") ?? NaN,
      closeWait,
      connectionsTotal: series.get("tcp_proxy_connections_total") ?? NaN,
      closedLines,
      proxyCpuS: cpuSeconds(proxy.pid),
      keepaliveMessages: load.stats.keepalive.messages,
      churnVerified: load.stats.churn.verified,
      bulkVerified: load.stats.bulk.verified,
      failures: load.failures.length,
      corruptions: load.corruptions.length
    }
    samples.push(sample)
    log(
      `t=${sample.t}s rss ${mib(sample.rssKiB)} MiB, heap ${mib(sample.heapKiB)} MiB, fds ${fds}, active ${sample.active}, CLOSE-WAIT ${closeWait}, conns ${sample.connectionsTotal}; ka ${sample.keepaliveMessages} msgs, churn ${sample.churnVerified}, bulk ${sample.bulkVerified}, failures ${sample.failures}, corruptions ${sample.corruptions}`
    )
    return sample
  }

  // The descriptors before the load: the least of a few readings (a health check may hold one for a moment).
  let baselineFds = Infinity
  for (let i = 0; i < 5; i++) {
    baselineFds = Math.min(baselineFds, fdCount(proxy.pid))
    await sleep(100)
  }
  t0 = Date.now()
  await takeSample("before")

  // The load and the disturbances.
  t0 = Date.now()
  const end = t0 + durationMs
  load.start()
  log(`load started: ${options.keepalive} keep-alive connections, ${options.churnRate} new connections/s, ${options.bulkMiB} MiB transfer every ${options.bulkEvery} s; for ${(durationMs / 1000).toFixed(0)} s`)

  let reloadsRequested = 0
  const reloads = (async () => {
    for (let k = 0; options.reloadEvery > 0; k++) {
      const at = t0 + FIRST_RELOAD_MS + k * options.reloadEvery * 1000
      if (at >= end) return
      await sleepUntil(at)
      const variant = k % 2 === 0 ? "b" : "a"
      replaceFile(configFile, configs[variant])
      process.kill(proxy.pid, "SIGHUP")
      reloadsRequested++
      log(`reload: config ${variant.toUpperCase()} (${variant === "a" ? "round-robin 3:1:1" : "least-conn 1:2:3"}), SIGHUP`)
    }
  })()

  const kills: Array<Kill> = []
  const killer = (async () => {
    for (let k = 0; options.killEvery > 0; k++) {
      const at = t0 + FIRST_KILL_MS + k * options.killEvery * 1000
      // No kill whose restart would not be done before the load stops.
      if (at + RESTART_AFTER_MS + 2_000 >= end) return
      await sleepUntil(at)
      const i = k % backends.length
      const kill: Kill = { backend: backendAddresses[i]!, killedAt: Date.now(), restartedAt: undefined }
      kills.push(kill)
      signalGroup(backends[i]!, "SIGKILL")
      await backends[i]!.exited
      log(`kill: backend ${kill.backend} (SIGKILL); restart in ${RESTART_AFTER_MS / 1000} s`)
      await sleep(RESTART_AFTER_MS)
      backends[i] = startBackend(i)
      await waitPort(backendPorts[i]!, backends[i]!)
      kill.restartedAt = Date.now()
      log(`restart: backend ${kill.backend} listening again`)
    }
  })()

  for (let k = 1; t0 + k * SAMPLE_EVERY_MS <= end; k++) {
    await sleepUntil(t0 + k * SAMPLE_EVERY_MS)
    await takeSample("load")
  }
  await sleepUntil(end)
  await Promise.all([reloads, killer])

  // Stop the load, let the proxy drain.
  log("stopping the load")
  await load.stop(60_000)
  const loadStoppedAt = Date.now()
  log(`load stopped; waiting for the proxy to drain`)
  const poll = async (what: string, test: () => Promise<boolean> | boolean, timeoutMs: number, everyMs: number): Promise<boolean> => {
    const deadline = Date.now() + timeoutMs
    for (;;) {
      if (await test()) return true
      if (Date.now() > deadline) {
        log(`${what}: not reached after ${timeoutMs / 1000} s`)
        return false
      }
      await sleep(everyMs)
    }
  }
  await poll("active connections back to 0", async () => (await metrics(metricsPort)).get("tcp_proxy_connections_active") === 0, 30_000, 500)
  await poll("no CLOSE-WAIT, descriptors back", () => closeWaits(proxy.pid).length === 0 && fdCount(proxy.pid) <= baselineFds + FD_SLACK, 15_000, 200)
  await poll(
    "connections_total = log lines",
    async () => (await metrics(metricsPort)).get("tcp_proxy_connections_total") === countClosedLines(stderrFile),
    5_000,
    500
  )
  const drainMs = Date.now() - loadStoppedAt
  const backendStates = async () =>
    (JSON.parse((await httpGet(metricsPort, "/backends")).body) as { backends: Array<{ address: string; state: string }> }).backends
  // The last killed backend may still be on its way back (three checks a second apart).
  await poll("every backend HEALTHY", async () => (await backendStates()).every((b) => b.state === "HEALTHY"), 15_000, 500)
  const finalStates = await backendStates()
  const leftCloseWait = closeWaits(proxy.pid)
  const final = await takeSample("drained")
  const finalSeries = await metrics(metricsPort)
  const proxyCpu = cpuSeconds(proxy.pid)

  // Stop everything; the proxy must exit 0 on SIGTERM.
  const proxyStop = await stop(proxy)
  for (const proc of backends) await stop(proc)
  const soakCpu = process.cpuUsage(soakCpu0)

  // ------------------------------------------------------------ checks
  const logSummary = readLog(stderrFile)
  const byPort = new Map<number, Array<Access>>()
  for (const a of logSummary.accesses) {
    const list = byPort.get(a.clientPort) ?? []
    list.push(a)
    byPort.set(a.clientPort, list)
  }
  interface Judged extends Failure {
    readonly expected: boolean
    readonly backend: string | undefined
    readonly proxyEnd: string | undefined
    readonly why: string
  }
  const judged: Array<Judged> = load.failures.map((f) => {
    if (f.localPort === undefined) return { ...f, expected: false, backend: undefined, proxyEnd: undefined, why: "never connected to the proxy" }
    const candidates = (byPort.get(f.localPort) ?? []).filter((a) => Math.abs(a.at - f.at) <= KILL_WINDOW_MS)
    candidates.sort((x, y) => Math.abs(x.at - f.at) - Math.abs(y.at - f.at))
    const access = candidates[0]
    if (access === undefined) return { ...f, expected: false, backend: undefined, proxyEnd: undefined, why: "no access-log line for its client port near that time" }
    const kill = kills.find((k) => k.backend === access.backend && f.at >= k.killedAt - 500 && f.at <= k.killedAt + KILL_WINDOW_MS)
    return kill === undefined
      ? { ...f, expected: false, backend: access.backend, proxyEnd: access.end, why: `its backend ${access.backend ?? "(none)"} was not being killed` }
      : { ...f, expected: true, backend: access.backend, proxyEnd: access.end, why: `on ${kill.backend}, killed ${f.at - kill.killedAt} ms before` }
  })
  const expected = judged.filter((j) => j.expected)
  const unexpected = judged.filter((j) => !j.expected)

  const checks: Array<Check> = []
  const check = (name: string, ok: boolean, detail: string) => checks.push({ name, status: ok ? "PASS" : "FAIL", detail })
  const s = load.stats
  const crossTalk = load.corruptions.filter((c) => c.crossTalk).length
  check(
    "integrity: no cross-talk, no corruption",
    load.corruptions.length === 0 && s.keepalive.messages > 0 && s.churn.verified > 0 && s.bulk.verified > 0,
    `${crossTalk} cross-talk, ${load.corruptions.length - crossTalk} other corruption; verified: ${s.keepalive.messages} keep-alive messages (${mib(s.keepalive.bytes / 1024)} MiB) on ${s.keepalive.connections} connections, ${s.churn.verified}/${s.churn.started} churn connections (${mib(s.churn.bytes / 1024)} MiB), ${s.bulk.verified}/${s.bulk.started} large transfers (${mib(s.bulk.bytes / 1024)} MiB)`
  )
  const perKill = kills.map((k) => `${k.backend.split(":")[1]}: ${expected.filter((e) => e.backend === k.backend && e.at >= k.killedAt - 500 && e.at <= k.killedAt + KILL_WINDOW_MS).length}`)
  check(
    "failures only on killed backends",
    unexpected.length === 0,
    `${kills.length} kills, ${expected.length} expected failures (on the killed backend, per kill ${perKill.join(", ") || "none"}), ${unexpected.length} unexpected`
  )
  const total = finalSeries.get("tcp_proxy_connections_total") ?? NaN
  check(
    "connections_total = `connection closed` lines = client connections",
    total === logSummary.closedLines && total === s.connected,
    `tcp_proxy_connections_total ${total}, log lines ${logSummary.closedLines}, connections the soak opened ${s.connected}${s.connectFailed > 0 ? ` (+${s.connectFailed} that never connected)` : ""}`
  )
  check(
    "drained: active 0, no CLOSE-WAIT, descriptors back",
    final.active === 0 && leftCloseWait.length === 0 && final.fds <= baselineFds + FD_SLACK,
    `active ${final.active}, CLOSE-WAIT ${leftCloseWait.length}${leftCloseWait.length > 0 ? ` (${leftCloseWait.slice(0, 5).map((w) => `${w.local}<-${w.remote}`).join(", ")})` : ""}, descriptors ${final.fds} (before the load ${baselineFds}, allowed +${FD_SLACK}); drained in ${(drainMs / 1000).toFixed(1)} s`
  )
  const steady = samples.filter((x) => x.phase === "load" && x.t * 1000 >= WARMUP_MS)
  const heapSlope = steady.length >= 2 ? slope(steady.map((x) => [x.t / 60, x.heapKiB])) : NaN
  const rssSlope = steady.length >= 2 ? slope(steady.map((x) => [x.t / 60, x.rssKiB])) : NaN
  const slopes = `heap after GC ${heapSlope.toFixed(0)} KiB/min (bound ${HEAP_SLOPE_MAX}), RSS ${rssSlope.toFixed(0)} KiB/min (bound ${RSS_SLOPE_MAX}), least squares over ${steady.length} samples from t=${WARMUP_MS / 1000} s`
  if (steady.length < MIN_SLOPE_SAMPLES) {
    const all = samples.filter((x) => x.phase === "load")
    const info = all.length >= 2
      ? `; over all ${all.length} load samples (not checked): heap ${slope(all.map((x) => [x.t / 60, x.heapKiB])).toFixed(0)} KiB/min, RSS ${slope(all.map((x) => [x.t / 60, x.rssKiB])).toFixed(0)} KiB/min`
      : ""
    checks.push({ name: "memory: no growth", status: "SKIP", detail: `needs ${MIN_SLOPE_SAMPLES} samples after the first ${WARMUP_MS / 1000} s (a run of ${Math.ceil((WARMUP_MS + (MIN_SLOPE_SAMPLES - 1) * SAMPLE_EVERY_MS) / 60_000)} minutes or more), has ${steady.length}${info}` })
  } else {
    check("memory: no growth", heapSlope < HEAP_SLOPE_MAX && rssSlope < RSS_SLOPE_MAX, slopes)
  }
  const healthDetail = backendAddresses.map((address) => {
    const killed = kills.filter((k) => k.backend === address).length
    const seen = logSummary.health[address] ?? { unhealthy: 0, healthy: 0 }
    return { address, killed, ...seen, ok: seen.unhealthy === killed && seen.healthy === killed }
  })
  check(
    "health: each kill seen once, each restart once",
    healthDetail.every((h) => h.ok) && finalStates.length === 3 && finalStates.every((b) => b.state === "HEALTHY"),
    `${healthDetail.map((h) => `${h.address.split(":")[1]}: killed ${h.killed}, UNHEALTHY ${h.unhealthy}, HEALTHY ${h.healthy}`).join("; ")}; at the end ${finalStates.map((b) => `${b.address.split(":")[1]} ${b.state}`).join(", ")}`
  )
  check(
    "log: reloads applied, no error lines",
    logSummary.reloadFailed.length === 0 && logSummary.errors.length === 0 && logSummary.reloaded >= reloadsRequested && logSummary.unparsed === 0,
    `${reloadsRequested} reloads requested, ${logSummary.reloaded} \`config reloaded\` lines, ${logSummary.reloadFailed.length} \`config reload failed\`, ${logSummary.errors.length} error or non-log lines${logSummary.errors.length > 0 ? ` (first: ${logSummary.errors[0]!.slice(0, 200)})` : ""}, ${logSummary.warnings} warnings${logSummary.unparsed > 0 ? `, ${logSummary.unparsed} unparsable access lines` : ""}`
  )
  check(
    "shutdown: SIGTERM exits 0",
    proxy.code === 0 && !proxyStop.killed,
    `exit code ${proxy.code}${proxy.signal !== null ? `, signal ${proxy.signal}` : ""} after ${proxyStop.ms} ms${proxyStop.killed ? " (had to be killed)" : ""}`
  )

  // ------------------------------------------------------------ report
  const passed = checks.every((c) => c.status !== "FAIL")
  const ends = Object.entries(logSummary.ends).sort((a, b) => b[1] - a[1]).map(([k, v]) => `${k} ${v}`).join(", ")
  const loadSeconds = (loadStoppedAt - t0) / 1000
  const summary = [
    `## Soak ${passed ? "PASSED" : "FAILED"}`,
    "",
    `${info.date.slice(0, 16).replace("T", " ")} UTC, commit ${info.commit}${info.dirty > 0 ? ` + ${info.dirty} changed file(s) in src` : ""}; ${options.minutes} min of load (${options.keepalive} keep-alive connections, ${options.churnRate} new connections/s, ${options.bulkMiB} MiB transfer every ${options.bulkEvery} s; config swap every ${options.reloadEvery} s, backend kill every ${options.killEvery} s${options.leak > 0 ? `, injected leak ${options.leak} B/connection` : ""}); ${reloadsRequested} reloads, ${kills.length} backend kills; ${info.nproc} CPU(s), Node ${info.node}, kernel ${info.kernel}`,
    "",
    markdownTable(["check", "result", "detail"], checks.map((c) => [c.name, c.status, c.detail.replace(/\|/g, "\\|")]), [0, 1, 2]),
    "",
    `- proxy access log ends: ${ends}`,
    `- CPU over ${loadSeconds.toFixed(0)} s of load: proxy ${proxyCpu.toFixed(1)} s (${((proxyCpu / loadSeconds) * 100).toFixed(0)} % of a core, start-up included), the soak itself ${((soakCpu.user + soakCpu.system) / 1e6).toFixed(1)} s`,
    ...(steady.length >= 2 ? [`- memory: ${slopes}`] : []),
    ...(unexpected.length > 0 ? ["", "Unexpected failures:", ...unexpected.slice(0, 20).map((u) => `- ${u.kind} #${u.id} port ${u.localPort ?? "-"} at ${new Date(u.at).toISOString().slice(11, 23)}: ${u.reason}; ${u.why}${u.proxyEnd !== undefined ? ` (proxy: end=${u.proxyEnd})` : ""}`)] : []),
    ...(load.corruptions.length > 0 ? ["", "Corruption:", ...load.corruptions.slice(0, 20).map((c) => `- ${c.kind} #${c.id} port ${c.localPort ?? "-"} at ${new Date(c.at).toISOString().slice(11, 23)}: ${c.reason}`)] : [])
  ].join("\n")
  const table = sampleTable(samples)
  const legend = "t: seconds since the load started; heap: heapUsed after a full GC (KiB figures in samples.json); heap total: the V8 heap's size; fds: open descriptors; active: tcp_proxy_connections_active; CLOSE-WAIT: the proxy's sockets in that state; conns: tcp_proxy_connections_total; log lines: `connection closed` lines so far; ka msgs, churn, bulk: verified so far; fail: client failures so far (expected or not); corrupt: corruption seen so far."
  const text = `${summary}\n\n### Samples\n\n${table}\n\n${legend}\n`
  Fs.writeFileSync(Path.join(out, "table.md"), text)
  Fs.writeFileSync(
    Path.join(out, "samples.json"),
    JSON.stringify(
      {
        options,
        machine: info,
        ports: { proxy: proxyPort, metrics: metricsPort, probe: probePort, backends: backendPorts },
        bounds: { heapSlopeKiBPerMin: HEAP_SLOPE_MAX, rssSlopeKiBPerMin: RSS_SLOPE_MAX, warmupS: WARMUP_MS / 1000, fdSlack: FD_SLACK },
        samples,
        baselineFds,
        slopes: { heapKiBPerMin: heapSlope, rssKiBPerMin: rssSlope, samples: steady.length },
        stats: load.stats,
        kills,
        reloadsRequested,
        log: { closedLines: logSummary.closedLines, health: logSummary.health, reloaded: logSummary.reloaded, reloadFailed: logSummary.reloadFailed, errors: logSummary.errors, warnings: logSummary.warnings, ends: logSummary.ends },
        failures: judged,
        corruptions: load.corruptions,
        checks,
        passed
      },
      null,
      2
    )
  )
  process.stdout.write(`\n${text}\n`)
  log(`results: ${Path.relative(root, out)}`)
  return passed
}

main().then(
  (passed) => {
    process.exit(passed ? 0 : 1)
  },
  (error: unknown) => {
    log(`failed: ${error instanceof Error ? error.stack ?? error.message : String(error)}`)
    process.exit(1)
  }
)
