/**
 * The benchmark (issue #5): `npm run bench [-- options]`.
 *
 * Starts the backends, the proxy under test and the baselines on 127.0.0.1,
 * measures each workload for every contender in interleaved rounds
 * (A B C A B C ...), and prints a markdown table of medians with the ratio
 * to the plain node:net pipe proxy. A second, identical pipe process runs
 * last in each round: its ratio to the first is the run's own noise. Raw
 * results go to bench/results/<time>/.
 * With --profile, a further, unmeasured pass runs the proxy (and the pipe
 * proxy, for comparison) under `node --cpu-prof` for each workload, and
 * takes heap snapshots and `process.memoryUsage()` for the idle one.
 *
 * Every process it starts is in its own process group and is stopped at the
 * end, on failure and on Ctrl-C.
 */
import { spawnSync } from "node:child_process"
import * as Fs from "node:fs"
import * as Net from "node:net"
import * as Os from "node:os"
import * as Path from "node:path"
import * as Readline from "node:readline"
import { fileURLToPath } from "node:url"
import {
  children,
  cpuSeconds,
  fdCount,
  has,
  log,
  nextPort,
  type Proc,
  rssKiB,
  sleep,
  start as startProcess,
  type StartOptions,
  stop
} from "./system.ts"
import { formatCpuSummary, formatHeapDiff, setSourceRoot, summariseCpuProfile } from "./profile.ts"

const benchDir = Path.dirname(fileURLToPath(import.meta.url))
const root = Path.dirname(benchDir)

// ---------------------------------------------------------------- options

type Workload = "rr" | "churn" | "bulk" | "idle" | "latency"
const workloads: ReadonlyArray<Workload> = ["rr", "churn", "bulk", "idle", "latency"]

interface Options {
  readonly rounds: number
  readonly duration: number
  readonly warmup: number
  readonly only: ReadonlyArray<Workload>
  readonly connections: number
  readonly idleConnections: number
  readonly rate: number
  readonly rateConnections: number
  readonly profile: boolean
  readonly contenders: ReadonlyArray<string> | undefined
}

const usage = `usage: npm run bench -- [options]

  --rounds N         interleaved rounds per workload          (default 3)
  --duration S       seconds per measurement                  (default 5)
  --warmup S         seconds of unmeasured warm-up per contender (default 1)
  --only LIST        workloads among rr,churn,bulk,idle,latency (default all)
  --contenders LIST  among direct,pipe,pipe-2,effect,effect-info,effect-guarded,effect-workers2,
                     effect-workers-auto,haproxy,haproxy-2,nginx,nginx-2,pipe-again (default all)
  --connections N    wrk keep-alive connections               (default 64)
  --idle-conns N     idle connections held open (a proxy needs 2N file
                     descriptors; the bench raises ulimit -n to the hard limit) (default 5000)
  --rate N           latency: requests/s, open loop            (default 2000)
  --rate-conns N     latency: keep-alive connections           (default 32)
  --profile          also profile the proxy (node --cpu-prof, heap snapshots)
  --help
`

const parseOptions = (argv: ReadonlyArray<string>): Options => {
  let rounds = 3
  let duration = 5
  let warmup = 1
  let only: ReadonlyArray<Workload> = workloads
  let connections = 64
  let idleConnections = 5000
  let rate = 2000
  let rateConnections = 32
  let profile = false
  let contenders: ReadonlyArray<string> | undefined = undefined
  const number = (flag: string, value: string | undefined, min: number): number => {
    const n = Number(value)
    if (value === undefined || !Number.isFinite(n) || n < min) fail(`${flag} needs a number >= ${min}`)
    return n
  }
  for (let i = 0; i < argv.length; i++) {
    const [flag, inline] = argv[i]!.split(/=(.*)/s, 2) as [string, string | undefined]
    const value = () => inline ?? argv[++i]
    switch (flag) {
      case "--rounds":
        rounds = Math.floor(number(flag, value(), 1))
        break
      case "--duration":
        duration = number(flag, value(), 1)
        break
      case "--warmup":
        warmup = number(flag, value(), 0)
        break
      case "--connections":
        connections = Math.floor(number(flag, value(), 1))
        break
      case "--idle-conns":
        idleConnections = Math.floor(number(flag, value(), 1))
        break
      case "--rate":
        rate = number(flag, value(), 1)
        break
      case "--rate-conns":
        rateConnections = Math.floor(number(flag, value(), 1))
        break
      case "--only": {
        const list = (value() ?? "").split(",").map((s) => s.trim()).filter((s) => s !== "")
        for (const w of list) if (!workloads.includes(w as Workload)) fail(`--only: unknown workload ${w}`)
        only = workloads.filter((w) => list.includes(w))
        break
      }
      case "--contenders":
        contenders = (value() ?? "").split(",").map((s) => s.trim()).filter((s) => s !== "")
        for (const c of contenders) if (!contenderIds.includes(c)) fail(`--contenders: unknown contender ${c}`)
        break
      case "--profile":
        profile = true
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
  return { rounds, duration, warmup, only, connections, idleConnections, rate, rateConnections, profile, contenders }
}

function fail(message: string): never {
  console.error(`bench: ${message}`)
  process.exit(2)
}


// ---------------------------------------------------------------- processes

/** Starts a process in the repository (unless `cwd` says otherwise); its output appends to `logFile`. */
const start = (
  name: string,
  command: string,
  args: ReadonlyArray<string>,
  options: Omit<StartOptions, "stdout" | "cwd"> & { readonly logFile: string; readonly cwd?: string }
): Proc => startProcess(name, command, args, { ...options, stdout: options.logFile, cwd: options.cwd ?? root })

/** Runs a command to its end (killed after `timeoutMs`), returning its stdout. */
const run = async (
  name: string,
  command: string,
  args: ReadonlyArray<string>,
  timeoutMs: number,
  logFile: string
): Promise<{ readonly code: number | null; readonly stdout: string }> => {
  const proc = start(name, command, args, { logFile, pipe: true })
  proc.child.stdin?.end()
  let stdout = ""
  proc.child.stdout?.setEncoding("utf8").on("data", (chunk: string) => (stdout += chunk))
  const timer = setTimeout(() => {
    try {
      process.kill(-proc.pid, "SIGKILL")
    } catch {
      // already gone
    }
  }, timeoutMs)
  const code = await proc.exited
  clearTimeout(timer)
  return { code, stdout }
}

/** Polls TCP connects to 127.0.0.1:port until one succeeds. */
const waitPort = async (port: number, proc?: Proc, timeoutMs = 20_000): Promise<void> => {
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
    if (proc?.done === true) throw new Error(`${proc.name} exited before listening on ${port}`)
    if (Date.now() > deadline) throw new Error(`nothing listens on 127.0.0.1:${port} after ${timeoutMs} ms`)
    await sleep(50)
  }
}

// ---------------------------------------------------------------- /proc

/** The RSS once it stops moving (three readings 200 ms apart within 0.5%), at most ~6 s. */
const settledRss = async (pid: number): Promise<number> => {
  let previous = rssKiB(pid)
  let steady = 0
  for (let i = 0; i < 30 && steady < 3; i++) {
    await sleep(200)
    const now = rssKiB(pid)
    steady = Math.abs(now - previous) <= previous * 0.005 ? steady + 1 : 0
    previous = now
  }
  return previous
}


/** Polls until the process has closed its sockets down to `limit` open descriptors. */
const waitFds = async (pid: number, limit: number, timeoutMs = 30_000): Promise<void> => {
  const deadline = Date.now() + timeoutMs
  while (fdCount(pid) > limit && Date.now() < deadline) await sleep(100)
}


// ---------------------------------------------------------------- contenders

const contenderIds = [
  "direct",
  "pipe",
  "pipe-2",
  "effect",
  "effect-info",
  "effect-guarded",
  "effect-workers2",
  "effect-workers-auto",
  "haproxy",
  "haproxy-2",
  "nginx",
  "nginx-2",
  "pipe-again"
]


/**
 * The front door at work (churn only): a 1,000-range --allow list (the last
 * range lets the bench's clients in) and per-IP limits too high to refuse.
 */
const guardFlags = [
  "--allow",
  [...Array.from({ length: 999 }, (_, i) => `10.${Math.floor(i / 250)}.${i % 250}.0/24`), "127.0.0.0/8"].join(","),
  "--max-connections-per-ip",
  "1000000",
  "--connection-rate-per-ip",
  "100000000/1s"
]

const labels: Record<string, string> = {
  direct: "direct (no proxy)",
  pipe: "node:net pipe proxy",
  "pipe-2": "node:net pipe proxy, 2 threads (reusePort)",
  effect: "effect-tcp-proxy --log-level warn",
  "effect-info": "effect-tcp-proxy --log-level info",
  "effect-guarded": "effect-tcp-proxy --log-level warn, 1,000-range --allow, per-IP limits",
  "effect-workers2": "effect-tcp-proxy --workers 2 --log-level warn",
  "effect-workers-auto": `effect-tcp-proxy --workers auto (${Os.availableParallelism()}) --log-level warn`,
  haproxy: "HAProxy mode tcp, nbthread 1",
  "haproxy-2": "HAProxy mode tcp, nbthread 2",
  nginx: "nginx stream, 1 worker",
  "nginx-2": "nginx stream, 2 workers",
  "pipe-again": "node:net pipe proxy again (same code: the run's noise)"
}

interface Running {
  readonly id: string
  readonly port: number
  /** The process whose CPU and memory are measured (nginx: its worker); none for direct. */
  readonly pid: number | undefined
  /** The processes whose CPU adds up, when more than `pid` (nginx's workers). */
  readonly pids?: () => ReadonlyArray<number>
  readonly proc: Proc | undefined
  readonly probePort?: number
}

interface Context {
  readonly options: Options
  readonly out: string
  readonly app: string
  readonly nginxStream: string | undefined
}

interface NodeExtras {
  readonly flags: ReadonlyArray<string>
  readonly cwd?: string
  readonly probe?: boolean
}

const startContender = async (
  ctx: Context,
  id: string,
  target: number,
  tag: string,
  extras: NodeExtras = { flags: [] }
): Promise<Running> => {
  if (id === "direct") return { id, port: target, pid: undefined, proc: undefined }
  const port = await nextPort()
  const logFile = Path.join(ctx.out, "logs", `${tag}-${id}.log`)
  const backend = `127.0.0.1:${target}`
  let proc: Proc
  let probePort: number | undefined
  switch (id) {
    case "pipe":
    case "pipe-2":
    case "pipe-again":
    case "effect":
    case "effect-info":
    case "effect-guarded":
    case "effect-workers2":
    case "effect-workers-auto": {
      const [script, args] = id === "pipe" || id === "pipe-2" || id === "pipe-again"
        ? [Path.join(benchDir, "pipe-proxy.ts"), [String(port), String(target), id === "pipe-2" ? "2" : "1"]]
        : [Path.join(ctx.app, "dist", "Main.js"), [
          "--laddr",
          `127.0.0.1:${port}`,
          "--log-level",
          id === "effect-info" ? "info" : "warn",
          ...(id === "effect-guarded" ? guardFlags : []),
          ...(id === "effect-workers2" ? ["--workers", "2"] : id === "effect-workers-auto" ? ["--workers", "auto"] : []),
          backend
        ]]
      const env: NodeJS.ProcessEnv = { ...process.env }
      const flags = [...extras.flags]
      if (extras.probe === true) {
        probePort = await nextPort()
        env["BENCH_PROBE_PORT"] = String(probePort)
        flags.push("--expose-gc", "--import", Path.join(benchDir, "probe.ts"))
      }
      proc = start(id, process.execPath, [...flags, script, ...args], {
        logFile,
        env,
        ...(extras.cwd === undefined ? {} : { cwd: extras.cwd })
      })
      break
    }
    case "haproxy":
    case "haproxy-2": {
      const config = Path.join(ctx.out, "conf", `haproxy-${port}.cfg`)
      Fs.writeFileSync(
        config,
        `global
  nbthread ${id === "haproxy-2" ? 2 : 1}
  maxconn 9000
defaults
  mode tcp
  timeout connect 3s
  timeout client 1h
  timeout server 1h
frontend fe
  bind 127.0.0.1:${port}
  default_backend be
backend be
  server s1 ${backend}
`
      )
      proc = start(id, "haproxy", ["-db", "-f", config], { logFile })
      break
    }
    case "nginx":
    case "nginx-2": {
      const dir = Path.join(ctx.out, "conf", `nginx-${port}`)
      Fs.mkdirSync(dir, { recursive: true })
      Fs.writeFileSync(
        Path.join(dir, "nginx.conf"),
        `${ctx.nginxStream ?? ""}
worker_processes ${id === "nginx-2" ? 2 : 1};
worker_rlimit_nofile 20000;
daemon off;
pid ${dir}/nginx.pid;
error_log ${dir}/error.log warn;
events { worker_connections 16000; }
stream {
  server {
    listen 127.0.0.1:${port} backlog=4096;
    proxy_pass ${backend};
    proxy_connect_timeout 3s;
    proxy_timeout 1h;
  }
}
`
      )
      proc = start(id, "nginx", ["-p", dir, "-e", `${dir}/error.log`, "-c", `${dir}/nginx.conf`], { logFile })
      break
    }
    default:
      throw new Error(`unknown contender ${id}`)
  }
  await waitPort(port, proc)
  let pid = proc.pid
  if (id === "nginx" || id === "nginx-2") {
    // Measure the workers, not the master.
    const deadline = Date.now() + 10_000
    const workers = id === "nginx" ? 1 : 2
    while (children(proc.pid).length < workers && Date.now() < deadline) await sleep(50)
    pid = children(proc.pid)[0] ?? proc.pid
  }
  const master = proc.pid
  return {
    id,
    port,
    pid,
    proc,
    ...(id === "nginx-2" ? { pids: () => children(master) } : {}),
    ...(probePort === undefined ? {} : { probePort })
  }
}

const stopContender = async (contender: Running) => {
  if (contender.proc !== undefined) await stop(contender.proc)
}

// ---------------------------------------------------------------- backends

const startHttpBackend = async (ctx: Context): Promise<{ readonly port: number; readonly proc: Proc; readonly kind: string }> => {
  const port = await nextPort()
  const logFile = Path.join(ctx.out, "logs", "backend-http.log")
  if (has("nginx")) {
    const dir = Path.join(ctx.out, "conf", "backend-http")
    Fs.mkdirSync(Path.join(dir, "tmp"), { recursive: true })
    Fs.writeFileSync(
      Path.join(dir, "nginx.conf"),
      `worker_processes 1;
worker_rlimit_nofile 20000;
daemon off;
pid ${dir}/nginx.pid;
error_log ${dir}/error.log warn;
events { worker_connections 16000; }
http {
  access_log off;
  client_body_temp_path ${dir}/tmp;
  proxy_temp_path ${dir}/tmp;
  fastcgi_temp_path ${dir}/tmp;
  uwsgi_temp_path ${dir}/tmp;
  scgi_temp_path ${dir}/tmp;
  keepalive_requests 1000000;
  keepalive_timeout 120s;
  server {
    listen 127.0.0.1:${port} backlog=4096;
    location / { default_type text/plain; return 200 "hello\\n"; }
  }
}
`
    )
    const proc = start("backend-nginx", "nginx", ["-p", dir, "-e", `${dir}/error.log`, "-c", `${dir}/nginx.conf`], {
      logFile
    })
    await waitPort(port, proc)
    return { port, proc, kind: "nginx (1 worker, return 200)" }
  }
  log("nginx not found (apt-get install nginx): using the Node HTTP backend, which is slower")
  const proc = start("backend-node", process.execPath, [Path.join(benchDir, "http-backend.ts"), String(port)], { logFile })
  await waitPort(port, proc)
  return { port, proc, kind: "node:http" }
}

// ---------------------------------------------------------------- measurements

interface Sample {
  readonly workload: Workload
  readonly contender: string
  readonly round: number
  /** req/s, conn/s, Gbit/s, KiB per connection, or mean latency in ms. */
  readonly value: number
  readonly p50Ms?: number
  readonly p99Ms?: number
  /** CPU of the proxy process per operation: µs per request, ms per GB, or none. */
  readonly cpuPerOp?: number
  readonly ops?: number
  readonly errors?: string
  readonly raw?: unknown
}

const parseWrkDuration = (text: string): number => {
  const m = /^([\d.]+)(us|ms|s|m)$/.exec(text)
  if (m === null) return NaN
  const n = Number(m[1])
  return m[2] === "us" ? n / 1000 : m[2] === "ms" ? n : m[2] === "s" ? n * 1000 : n * 60_000
}

const wrk = async (ctx: Context, port: number, seconds: number, close: boolean) => {
  const args = [
    "-t1",
    `-c${ctx.options.connections}`,
    `-d${seconds}s`,
    "--latency",
    "--timeout",
    "5s",
    ...(close ? ["-H", "Connection: close"] : []),
    `http://127.0.0.1:${port}/`
  ]
  const { code, stdout } = await run("wrk", "wrk", args, (seconds + 30) * 1000, Path.join(ctx.out, "logs", "wrk.log"))
  const rps = Number(/Requests\/sec:\s+([\d.]+)/.exec(stdout)?.[1])
  const requests = Number(/(\d+) requests in/.exec(stdout)?.[1])
  const p50 = parseWrkDuration(/^\s+50%\s+(\S+)/m.exec(stdout)?.[1] ?? "")
  const p99 = parseWrkDuration(/^\s+99%\s+(\S+)/m.exec(stdout)?.[1] ?? "")
  const errors = [/Socket errors:.*$/m.exec(stdout)?.[0], /Non-2xx or 3xx responses:.*$/m.exec(stdout)?.[0]]
    .filter((s) => s !== undefined)
    .join("; ")
  if (code !== 0 || !Number.isFinite(rps) || !(requests > 0)) throw new Error(`wrk failed (exit ${code}): ${stdout.slice(-400)}`)
  return { rps, requests, p50, p99, errors, stdout }
}

const iperf = async (ctx: Context, port: number, seconds: number) => {
  const { code, stdout } = await run(
    "iperf3",
    "iperf3",
    ["-c", "127.0.0.1", "-p", String(port), "-t", String(seconds), "-J"],
    (seconds + 30) * 1000,
    Path.join(ctx.out, "logs", "iperf3.log")
  )
  let json: { error?: string; end?: { sum_received?: { bits_per_second: number; bytes: number } } }
  try {
    json = JSON.parse(stdout)
  } catch {
    throw new Error(`iperf3 failed (exit ${code}): ${stdout.slice(-400)}`)
  }
  const received = json.end?.sum_received
  if (json.error !== undefined || received === undefined) throw new Error(`iperf3: ${json.error ?? "no result"}`)
  return { gbps: received.bits_per_second / 1e9, bytes: received.bytes }
}

interface RateResult {
  readonly requests: number
  readonly completed: number
  readonly errors: number
  readonly pipelined: number
  readonly meanMs: number
  readonly p50Ms: number
  readonly p99Ms: number
  readonly maxMs: number
  readonly lagMeanMs: number
  readonly lagP99Ms: number
  readonly cpuMs: number
  readonly error?: string
}

/** bench/rate-client.ts: `--rate` requests/s over `--rate-conns` keep-alive connections, open loop. */
const rateClient = async (ctx: Context, port: number, seconds: number): Promise<RateResult> => {
  const { rate, rateConnections } = ctx.options
  const { code, stdout } = await run(
    "rate-client",
    process.execPath,
    [Path.join(benchDir, "rate-client.ts"), String(port), String(rate), String(rateConnections), String(seconds)],
    (seconds + 30) * 1000,
    Path.join(ctx.out, "logs", "rate-client.log")
  )
  let result: RateResult
  try {
    result = JSON.parse(stdout.trim().split("\n").at(-1) ?? "")
  } catch {
    throw new Error(`rate client failed (exit ${code}): ${stdout.slice(-400)}`)
  }
  if (code !== 0 || !(result.completed > 0)) throw new Error(`rate client (exit ${code}): ${result.error ?? "no response"}`)
  return result
}

/** The CPU seconds a contender has used: its process's (every thread), or its workers' together. */
const cpuOf = (contender: Running): number =>
  contender.pids === undefined
    ? cpuSeconds(contender.pid!)
    : contender.pids().reduce((sum, pid) => sum + cpuSeconds(pid), 0)

/** One measurement of a throughput workload; CPU is the measured process's own. */
const measure = async (ctx: Context, workload: Workload, contender: Running, round: number, seconds: number): Promise<Sample> => {
  const cpu0 = contender.pid === undefined ? 0 : cpuOf(contender)
  if (workload === "bulk") {
    const { bytes, gbps } = await iperf(ctx, contender.port, seconds)
    const cpu = contender.pid === undefined ? undefined : cpuOf(contender) - cpu0
    return {
      workload,
      contender: contender.id,
      round,
      value: gbps,
      ops: bytes,
      ...(cpu === undefined ? {} : { cpuPerOp: cpu * 1000 / (bytes / 1e9) })
    }
  }
  if (workload === "latency") {
    const result = await rateClient(ctx, contender.port, seconds)
    const cpu = contender.pid === undefined ? undefined : cpuOf(contender) - cpu0
    const failed = result.requests - result.completed
    return {
      workload,
      contender: contender.id,
      round,
      value: result.meanMs,
      p50Ms: result.p50Ms,
      p99Ms: result.p99Ms,
      ops: result.completed,
      ...(cpu === undefined ? {} : { cpuPerOp: cpu * 1e6 / result.completed }),
      ...(failed > 0 ? { errors: `${failed} of ${result.requests} requests failed` } : {}),
      raw: result
    }
  }
  const result = await wrk(ctx, contender.port, seconds, workload === "churn")
  const cpu = contender.pid === undefined ? undefined : cpuOf(contender) - cpu0
  return {
    workload,
    contender: contender.id,
    round,
    value: result.rps,
    p50Ms: result.p50,
    p99Ms: result.p99,
    ops: result.requests,
    ...(cpu === undefined ? {} : { cpuPerOp: cpu * 1e6 / result.requests }),
    ...(result.errors.length > 0 ? { errors: result.errors } : {})
  }
}

/** Measures, retrying once: the machine is shared and iperf3's server can be caught by a health check. */
const measureRetrying = async (
  ctx: Context,
  workload: Workload,
  contender: Running,
  round: number,
  seconds: number
): Promise<Sample | undefined> => {
  for (let attempt = 1;; attempt++) {
    try {
      return await measure(ctx, workload, contender, round, seconds)
    } catch (error) {
      log(`  ${workload} ${contender.id}: ${(error as Error).message.split("\n")[0]}${attempt < 2 ? ", retrying" : ""}`)
      if (attempt >= 2) return undefined
    }
  }
}

const describe = (sample: Sample): string => {
  const cpu = sample.cpuPerOp === undefined ? "" : ` cpu ${sample.cpuPerOp.toFixed(1)}${sample.workload === "bulk" ? " ms/GB" : " µs/op"}`
  const p99 = sample.p99Ms === undefined ? "" : ` p99 ${sample.p99Ms.toFixed(sample.workload === "latency" ? 3 : 2)} ms`
  const value = sample.workload === "bulk"
    ? `${sample.value.toFixed(2)} Gbit/s`
    : sample.workload === "idle"
    ? `${sample.value.toFixed(2)} KiB/conn`
    : sample.workload === "latency"
    ? `mean ${sample.value.toFixed(3)} ms p50 ${sample.p50Ms?.toFixed(3)} ms`
    : `${sample.value.toFixed(0)} /s`
  return `${value}${p99}${cpu}${sample.errors === undefined ? "" : ` (${sample.errors})`}`
}

// ---------------------------------------------------------------- idle connections

const sinkCount = (controlPort: number): Promise<number> =>
  new Promise((resolve, reject) => {
    let text = ""
    const socket = Net.connect({ host: "127.0.0.1", port: controlPort })
    socket.setEncoding("utf8")
    socket.on("data", (chunk: string) => (text += chunk))
    socket.on("end", () => resolve(Number(text)))
    socket.on("error", reject)
  })

/** Polls the sink until `predicate(count)`; fails after `timeoutMs`. */
const waitSink = async (controlPort: number, predicate: (n: number) => boolean, what: string, timeoutMs = 60_000) => {
  const deadline = Date.now() + timeoutMs
  for (;;) {
    const n = await sinkCount(controlPort)
    if (predicate(n)) return n
    if (Date.now() > deadline) throw new Error(`sink: ${what} not reached (at ${n})`)
    await sleep(100)
  }
}

interface Holder {
  readonly proc: Proc
  readonly close: () => Promise<void>
}

/** Opens `n` idle connections to `port` from a child process and resolves once all are connected. */
const holdIdle = async (ctx: Context, port: number, n: number): Promise<Holder> => {
  const proc = start("idle-client", process.execPath, [Path.join(benchDir, "idle-client.ts"), String(port), String(n)], {
    logFile: Path.join(ctx.out, "logs", "idle-client.log"),
    pipe: true
  })
  const lines = Readline.createInterface({ input: proc.child.stdout! })
  const next = () =>
    new Promise<string>((resolve) => {
      const onLine = (line: string) => {
        lines.off("line", onLine)
        resolve(line)
      }
      lines.on("line", onLine)
      void proc.exited.then(() => resolve("exited"))
    })
  const first = await Promise.race([next(), sleep(120_000).then(() => "timeout")])
  if (first !== `open ${n}`) {
    await stop(proc)
    throw new Error(`idle client: ${first}`)
  }
  return {
    proc,
    close: async () => {
      proc.child.stdin?.end("close\n")
      await Promise.race([proc.exited, sleep(30_000)])
      await stop(proc)
    }
  }
}

/** Warm-up, then RSS before and after `n` idle connections (waiting until the sink holds them all). */
const idleOnce = async (ctx: Context, contender: Running, controlPort: number, round: number): Promise<Sample> => {
  const n = ctx.options.idleConnections
  const pid = contender.pid!
  // Warm-up: the code paths for accept, dial and close run before the baseline reading.
  const fds = fdCount(pid)
  const warm = await holdIdle(ctx, contender.port, 200)
  await waitSink(controlPort, (c) => c >= 200, "200 warm-up connections")
  await warm.close()
  await waitSink(controlPort, (c) => c === 0, "warm-up connections closed")
  await waitFds(pid, fds + 2)
  const before = await settledRss(pid)
  const holder = await holdIdle(ctx, contender.port, n)
  try {
    await waitSink(controlPort, (c) => c >= n, `${n} connections at the sink`)
    const after = await settledRss(pid)
    return { workload: "idle", contender: contender.id, round, value: (after - before) / n, raw: { before, after, n } }
  } finally {
    await holder.close()
    await waitSink(controlPort, (c) => c === 0, "idle connections closed")
  }
}

// ---------------------------------------------------------------- workloads

const samples: Array<Sample> = []
const notes: Array<string> = []

const throughputContenders = (ctx: Context, workload: Workload, available: ReadonlyArray<string>): Array<string> =>
  available.filter((id) =>
    ((id !== "effect-info" && id !== "effect-guarded") || workload === "churn") &&
    (ctx.options.contenders === undefined || ctx.options.contenders.includes(id))
  )

const benchThroughput = async (ctx: Context, workload: Workload, target: number, ids: ReadonlyArray<string>) => {
  const { duration, rounds, warmup } = ctx.options
  const contenders: Array<Running> = []
  try {
    for (const id of ids) contenders.push(await startContender(ctx, id, target, workload))
    if (warmup > 0) {
      log(`${workload}: warm-up ${warmup}s each`)
      for (const contender of contenders) await measureRetrying(ctx, workload, contender, 0, warmup)
    }
    for (let round = 1; round <= rounds; round++) {
      for (const contender of contenders) {
        const sample = await measureRetrying(ctx, workload, contender, round, duration)
        if (sample === undefined) continue
        samples.push(sample)
        log(`${workload} round ${round}/${rounds} ${contender.id.padEnd(11)} ${describe(sample)}`)
      }
    }
  } finally {
    for (const contender of contenders) await stopContender(contender)
  }
  if (ids.includes("effect-info")) {
    const file = Path.join(ctx.out, "logs", `${workload}-effect-info.log`)
    if (Fs.existsSync(file)) {
      const text = Fs.readFileSync(file, "utf8")
      const lines = text.split("\n").filter((line) => line.includes("connection closed")).length
      notes.push(`${workload}: --log-level info wrote ${lines} "connection closed" lines (${(text.length / 1e6).toFixed(1)} MB) to its log file`)
      // The log is only evidence that the line was written; keep a sample of it.
      Fs.writeFileSync(file, text.split("\n").slice(0, 20).join("\n") + "\n...\n")
    }
  }
}

const benchIdle = async (ctx: Context, ids: ReadonlyArray<string>, sink: { readonly port: number; readonly control: number }) => {
  const { rounds } = ctx.options
  for (let round = 1; round <= rounds; round++) {
    for (const id of ids) {
      // A fresh process for each reading, so no round inherits the heap another one grew.
      const contender = await startContender(ctx, id, sink.port, "idle")
      try {
        const sample = await idleOnce(ctx, contender, sink.control, round)
        samples.push(sample)
        const { before, after } = sample.raw as { before: number; after: number }
        log(`idle round ${round}/${rounds} ${id.padEnd(11)} ${describe(sample)} (RSS ${before} -> ${after} KiB)`)
      } catch (error) {
        log(`  idle ${id}: ${(error as Error).message}`)
      } finally {
        await stopContender(contender)
      }
    }
  }
}

// ---------------------------------------------------------------- profiling

const findFile = async (dir: string, suffix: string, timeoutMs = 20_000): Promise<Array<string>> => {
  const deadline = Date.now() + timeoutMs
  for (;;) {
    const files = Fs.existsSync(dir) ? Fs.readdirSync(dir).filter((f) => f.endsWith(suffix)).sort() : []
    if (files.length > 0 || Date.now() > deadline) return files.map((f) => Path.join(dir, f))
    await sleep(100)
  }
}

const nowUs = () => Number(process.hrtime.bigint() / 1000n)

const profileThroughput = async (ctx: Context, workload: Workload, target: number, ids: ReadonlyArray<string>) => {
  const reports: Array<string> = []
  for (const id of ids) {
    const dir = Path.join(ctx.out, "prof", `${workload}-${id}`)
    Fs.mkdirSync(dir, { recursive: true })
    const contender = await startContender(ctx, id, target, `prof-${workload}`, {
      flags: ["--cpu-prof", `--cpu-prof-dir=${dir}`, "--trace-gc-nvp"]
    })
    let sample: Sample | undefined
    let window: { startUs: number; endUs: number } | undefined
    try {
      await measureRetrying(ctx, workload, contender, 0, ctx.options.warmup || 1)
      const startUs = nowUs()
      sample = await measureRetrying(ctx, workload, contender, 0, ctx.options.duration)
      window = { startUs, endUs: nowUs() }
    } finally {
      await stopContender(contender)
    }
    const [file] = await findFile(dir, ".cpuprofile")
    if (file === undefined || sample === undefined) {
      log(`profile ${workload} ${id}: no profile written`)
      continue
    }
    const summary = summariseCpuProfile(file, window)
    const ops = workload === "bulk"
      ? { count: (sample.ops ?? 0) / 1e9, label: "GB", perUnit: 1, unit: "ms CPU/GB" }
      : { count: sample.ops ?? 0, label: "requests", perUnit: 1000, unit: "µs CPU/request (main thread)" }
    const logFile = Path.join(ctx.out, "logs", `prof-${workload}-${id}.log`)
    reports.push(
      formatCpuSummary(`${workload}, ${labels[id]} (${describe(sample)} under the profiler)`, summary, ops) +
        gcSummary(logFile, ops)
    )
    keepGcLines(logFile)
  }
  return reports
}

/** Shrinks a log that `connection closed` lines made large to its GC lines and its first lines. */
const keepGcLines = (file: string) => {
  if (!Fs.existsSync(file) || Fs.statSync(file).size < 1_000_000) return
  const lines = Fs.readFileSync(file, "utf8").split("\n")
  Fs.writeFileSync(file, [...lines.slice(0, 20), "...", ...lines.filter((line) => line.includes(" gc="))].join("\n") + "\n")
}

/** The collections `--trace-gc-nvp` names. */
const gcKinds: Record<string, string> = { s: "Scavenge", mc: "Mark-Compact", ms: "Minor Mark-Sweep" }

/** A numeric field of a `--trace-gc-nvp` line, 0 when absent. */
const nvpField = (line: string, name: string): number => Number(new RegExp(`\\b${name}=([\\d.]+)`).exec(line)?.[1] ?? 0)

/**
 * Counts and times the collections `--trace-gc-nvp` logged (the whole run,
 * warm-up included), and what the median scavenge promoted to the old
 * generation: a proxy whose finished connections are promoted pays for them
 * again in mark-compacts (PERF-NOTES, round 4).
 */
const gcSummary = (file: string, ops: { readonly count: number; readonly label: string }): string => {
  const kinds = new Map<string, { n: number; ms: number }>()
  const promoted: Array<number> = []
  let heapMB = 0
  for (const line of Fs.existsSync(file) ? Fs.readFileSync(file, "utf8").split("\n") : []) {
    const code = /\bgc=(\w+)/.exec(line)?.[1]
    if (code === undefined) continue
    const name = gcKinds[code] ?? code
    const kind = kinds.get(name) ?? { n: 0, ms: 0 }
    kind.n++
    kind.ms += nvpField(line, "pause") + nvpField(line, "incremental")
    kinds.set(name, kind)
    if (code === "s") promoted.push(nvpField(line, "promoted"))
    heapMB = nvpField(line, "end_object_size") / 2 ** 20
  }
  if (kinds.size === 0) return ""
  // The median scavenge: start-up promotes the proxy's modules once, the steady state is what repeats.
  const median = promoted.sort((a, b) => a - b)[Math.floor(promoted.length / 2)]
  return "GC (--trace-gc-nvp, main-thread pauses and incremental steps, warm-up included): " +
    [...kinds].map(([name, k]) => `${k.n} ${name} ${k.ms.toFixed(0)} ms (${(k.ms / k.n).toFixed(1)} ms each)`).join(", ") +
    (median === undefined ? "" : `; the median scavenge promoted ${(median / 1024).toFixed(0)} KiB`) +
    `; heap after the last: ${heapMB.toFixed(1)} MB; ${ops.count.toFixed(ops.label === "GB" ? 2 : 0)} ${ops.label} measured\n`
}

const probe = (port: number): Promise<NodeJS.MemoryUsage> =>
  new Promise((resolve, reject) => {
    let text = ""
    const socket = Net.connect({ host: "127.0.0.1", port })
    socket.setEncoding("utf8")
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

/** Heap snapshot via --heapsnapshot-signal: the probe answers only once the (synchronous) snapshot is written. */
const snapshot = async (contender: Running, dir: string): Promise<string> => {
  const before = new Set(Fs.readdirSync(dir))
  process.kill(contender.pid!, "SIGUSR2")
  await sleep(100)
  await probe(contender.probePort!)
  const files = await findFile(dir, ".heapsnapshot")
  const fresh = files.filter((f) => !before.has(Path.basename(f)))
  if (fresh[0] === undefined) throw new Error("no heap snapshot written")
  return fresh[0]
}

const profileIdle = async (ctx: Context, ids: ReadonlyArray<string>, sink: { readonly port: number; readonly control: number }) => {
  const n = ctx.options.idleConnections
  const reports: Array<string> = []
  for (const id of ids) {
    const dir = Path.join(ctx.out, "prof", `idle-${id}`)
    Fs.mkdirSync(dir, { recursive: true })
    const contender = await startContender(ctx, id, sink.port, "prof-idle", {
      flags: ["--heapsnapshot-signal=SIGUSR2"],
      cwd: dir,
      probe: true
    })
    try {
      const warm = await holdIdle(ctx, contender.port, 200)
      await waitSink(sink.control, (c) => c >= 200, "warm-up")
      await warm.close()
      await waitSink(sink.control, (c) => c === 0, "warm-up closed")
      const m0 = await probe(contender.probePort!)
      const rss0 = await settledRss(contender.pid!)
      const fds0 = fdCount(contender.pid!)
      const holder = await holdIdle(ctx, contender.port, n)
      let held: string
      let m1: NodeJS.MemoryUsage
      let rss1: number
      try {
        await waitSink(sink.control, (c) => c >= n, "connections")
        m1 = await probe(contender.probePort!)
        rss1 = await settledRss(contender.pid!)
        // Snapshots after the readings: writing one grows the RSS.
        held = await snapshot(contender, dir)
      } finally {
        await holder.close()
        await waitSink(sink.control, (c) => c === 0, "idle connections closed")
      }
      // The baseline is the same process once the connections are gone, so the diff is what they held.
      await waitFds(contender.pid!, fds0 + 2)
      const released = await snapshot(contender, dir)
      const per = (key: keyof NodeJS.MemoryUsage) => `${key} ${((m1[key] - m0[key]) / 1024 / n).toFixed(2)}`
      reports.push(
        `## idle, ${labels[id]}\n` +
          `per connection after a full GC (KiB): ${per("rss")}, ${per("heapTotal")}, ${per("heapUsed")}, ${per("external")}, ${
            per("arrayBuffers")
          }; settled VmRSS delta ${((rss1 - rss0) / n).toFixed(2)} KiB\n` +
          `absolute (MiB) before -> after: rss ${(m0.rss / 2 ** 20).toFixed(1)} -> ${(m1.rss / 2 ** 20).toFixed(1)}, heapUsed ${
            (m0.heapUsed / 2 ** 20).toFixed(1)
          } -> ${(m1.heapUsed / 2 ** 20).toFixed(1)}, heapTotal ${(m0.heapTotal / 2 ** 20).toFixed(1)} -> ${(m1.heapTotal / 2 ** 20).toFixed(1)}\n` +
          formatHeapDiff(`idle heap growth, ${labels[id]} (held vs released)`, released, held, n)
      )
      for (const file of [held, released]) Fs.rmSync(file) // large; the summary is what matters
    } finally {
      await stopContender(contender)
    }
  }
  return reports
}

// ---------------------------------------------------------------- report

const median = (values: ReadonlyArray<number>): number => {
  const sorted = [...values].sort((a, b) => a - b)
  const mid = sorted.length >> 1
  return sorted.length === 0 ? NaN : sorted.length % 2 === 1 ? sorted[mid]! : (sorted[mid - 1]! + sorted[mid]!) / 2
}

/** `inverse`: vs pipe is pipe / contender (a time: higher is better, as for throughput). */
const units: Record<Workload, { metric: string; cpu: string; digits: number; inverse?: boolean }> = {
  rr: { metric: "req/s", cpu: "µs/req", digits: 0 },
  churn: { metric: "conn/s", cpu: "µs/conn", digits: 0 },
  bulk: { metric: "Gbit/s", cpu: "ms/GB", digits: 2 },
  idle: { metric: "KiB/conn", cpu: "", digits: 2 },
  latency: { metric: "ms mean", cpu: "µs/req", digits: 3, inverse: true }
}

/** The targets the proxy is held to, on `vs pipe`. */
const targets: ReadonlyArray<{
  readonly workload: Workload
  readonly contender: string
  readonly ratio: number
  readonly higherIsBetter: boolean
}> = [
  { workload: "rr", contender: "effect", ratio: 1.00, higherIsBetter: true },
  { workload: "churn", contender: "effect", ratio: 0.95, higherIsBetter: true },
  { workload: "churn", contender: "effect-info", ratio: 0.90, higherIsBetter: true },
  { workload: "bulk", contender: "effect", ratio: 1.00, higherIsBetter: true },
  { workload: "idle", contender: "effect", ratio: 1.10, higherIsBetter: false },
  { workload: "latency", contender: "effect", ratio: 0.95, higherIsBetter: true }
]

const table = (ctx: Context, order: ReadonlyArray<string>): string => {
  const rows: Array<Array<string>> = [[
    "workload",
    "contender",
    "median",
    "min – max",
    "vs pipe",
    "paired",
    "p50 ms",
    "p99 ms",
    "proxy CPU/op",
    "target"
  ]]
  for (const workload of ctx.options.only) {
    const { cpu, digits, inverse, metric } = units[workload]
    const vs = (mine: number, pipe: number) => inverse === true ? pipe / mine : mine / pipe
    const ms = workload === "latency" ? 3 : 2
    const of = (id: string) => samples.filter((s) => s.workload === workload && s.contender === id)
    const pipe = of("pipe")
    const pipeMedian = median(pipe.map((s) => s.value))
    for (const id of order) {
      const mine = of(id)
      if (mine.length === 0) continue
      const values = mine.map((s) => s.value)
      const m = median(values)
      const ratio = vs(m, pipeMedian)
      const paired = median(
        mine.flatMap((s) => {
          const p = pipe.find((q) => q.round === s.round)
          return p === undefined ? [] : [vs(s.value, p.value)]
        })
      )
      const p50 = mine.every((s) => s.p50Ms !== undefined) ? median(mine.map((s) => s.p50Ms!)).toFixed(ms) : ""
      const p99 = mine.every((s) => s.p99Ms !== undefined) ? median(mine.map((s) => s.p99Ms!)).toFixed(ms) : ""
      const cpuValues = mine.flatMap((s) => s.cpuPerOp === undefined ? [] : [s.cpuPerOp])
      const target = targets.find((t) => t.workload === workload && t.contender === id)
      const verdict = target === undefined || !Number.isFinite(ratio)
        ? ""
        : `${target.higherIsBetter ? "≥" : "≤"} ${target.ratio.toFixed(2)}: ${
          (target.higherIsBetter ? ratio >= target.ratio : ratio <= target.ratio) ? "met" : "**missed**"
        }`
      rows.push([
        workload,
        labels[id] ?? id,
        `${m.toFixed(digits)} ${metric}`,
        `${Math.min(...values).toFixed(digits)} – ${Math.max(...values).toFixed(digits)}`,
        Number.isFinite(ratio) ? ratio.toFixed(2) : "",
        Number.isFinite(paired) ? paired.toFixed(2) : "",
        p50,
        p99,
        cpuValues.length > 0 ? `${median(cpuValues).toFixed(1)} ${cpu}` : "",
        verdict
      ])
    }
  }
  const widths = rows[0]!.map((_, i) => Math.max(...rows.map((row) => row[i]!.length)))
  const line = (row: ReadonlyArray<string>) => `| ${row.map((cell, i) => cell.padEnd(widths[i]!)).join(" | ")} |`
  return [line(rows[0]!), `|${widths.map((w) => "-".repeat(w + 2)).join("|")}|`, ...rows.slice(1).map(line)].join("\n")
}

// ---------------------------------------------------------------- main

const machine = () => {
  const cpuinfo = Fs.readFileSync("/proc/cpuinfo", "utf8")
  const version = (command: string, args: ReadonlyArray<string>) => {
    const result = spawnSync(command, args, { encoding: "utf8" })
    return `${result.stdout ?? ""}${result.stderr ?? ""}`.split("\n").find((line) => line.trim() !== "")?.trim() ?? "?"
  }
  const git = (args: ReadonlyArray<string>) => spawnSync("git", args, { cwd: root, encoding: "utf8" }).stdout?.trim() ?? ""
  return {
    nproc: Os.availableParallelism(),
    cpu: /model name\s*:\s*(.*)/.exec(cpuinfo)?.[1] ?? "?",
    memoryGiB: +(Os.totalmem() / 2 ** 30).toFixed(1),
    kernel: Os.release(),
    node: process.version,
    loadavg: Os.loadavg(),
    commit: git(["rev-parse", "--short", "HEAD"]),
    dirty: git(["status", "--porcelain", "--", "src"]).split("\n").filter(Boolean).length,
    tools: {
      wrk: has("wrk") ? version("wrk", ["-v"]) : "missing",
      iperf3: has("iperf3") ? version("iperf3", ["-v"]) : "missing",
      haproxy: has("haproxy") ? version("haproxy", ["-v"]) : "missing",
      nginx: has("nginx") ? version("nginx", ["-v"]) : "missing"
    }
  }
}

const nginxStreamModule = (): string | undefined | false => {
  if (!has("nginx")) return false
  const built = spawnSync("nginx", ["-V"], { encoding: "utf8" }).stderr ?? ""
  if (/--with-stream(\s|$)/.test(built)) return undefined
  for (const dir of ["/usr/lib/nginx/modules", "/usr/share/nginx/modules", "/usr/lib64/nginx/modules"]) {
    const file = Path.join(dir, "ngx_stream_module.so")
    if (Fs.existsSync(file)) return `load_module ${file};`
  }
  return false
}

const main = async () => {
  const options = parseOptions(process.argv.slice(2))
  const dist = Path.join(root, "dist", "Main.js")
  if (!Fs.existsSync(dist)) fail("dist/Main.js is missing: run `npm run build` first")

  const stamp = new Date().toISOString().replace(/[:.]/g, "-").slice(0, 19)
  const out = Path.join(benchDir, "results", stamp)
  for (const dir of ["logs", "conf", "prof"]) Fs.mkdirSync(Path.join(out, dir), { recursive: true })
  // One build for the whole run, even if dist/ is rebuilt meanwhile: node_modules still resolves from the root.
  const app = Path.join(out, "app")
  Fs.cpSync(Path.join(root, "dist"), Path.join(app, "dist"), { recursive: true })
  Fs.copyFileSync(Path.join(root, "package.json"), Path.join(app, "package.json"))

  setSourceRoot(app)
  const stream = nginxStreamModule()
  const ctx: Context = { options, out, app, nginxStream: stream === false ? undefined : stream }
  const info = machine()
  Fs.writeFileSync(Path.join(out, "meta.json"), JSON.stringify({ options, machine: info }, null, 2))
  log(`results in ${Path.relative(root, out)}; commit ${info.commit}; ${info.nproc} CPU(s) ${info.cpu}, Node ${info.node}, load ${info.loadavg.map((l) => l.toFixed(2)).join(" ")}`)

  const available = ["direct", "pipe", "pipe-2", "effect", "effect-info", "effect-guarded", "effect-workers2", "effect-workers-auto"]
  if (has("haproxy")) available.push("haproxy", "haproxy-2")
  else notes.push("HAProxy skipped: apt-get install haproxy")
  if (stream !== false) available.push("nginx", "nginx-2")
  else notes.push(has("nginx") ? "nginx stream skipped: apt-get install libnginx-mod-stream" : "nginx stream skipped: apt-get install nginx libnginx-mod-stream")
  // Last in every round: a second plain pipe, whose ratio to the first shows how far two identical proxies read apart.
  available.push("pipe-again")
  for (const note of notes) log(note)

  const profiles: Array<string> = []
  const wanted = (id: string) => options.contenders === undefined || options.contenders.includes(id)
  const profiled = (workload: Workload) => ["pipe", "effect", ...(workload === "churn" ? ["effect-info"] : [])]

  for (const workload of options.only) {
    if ((workload === "rr" || workload === "churn") && !has("wrk")) {
      notes.push(`${workload} skipped: wrk is missing (apt-get install wrk)`)
      log(notes.at(-1)!)
      continue
    }
    if (workload === "bulk" && !has("iperf3")) {
      notes.push("bulk skipped: iperf3 is missing (apt-get install iperf3)")
      log(notes.at(-1)!)
      continue
    }
    if (workload === "rr" || workload === "churn" || workload === "latency") {
      const backend = await startHttpBackend(ctx)
      notes.push(
        workload === "latency"
          ? `latency: backend ${backend.kind}; bench/rate-client.ts, ${options.rate} req/s open loop over ${options.rateConnections} keep-alive connections, latency from each request's scheduled send time; vs pipe = pipe mean / contender mean (higher is better)`
          : `${workload}: backend ${backend.kind}; wrk -t1 -c${options.connections}${workload === "churn" ? " -H 'Connection: close'" : ""}`
      )
      try {
        await benchThroughput(ctx, workload, backend.port, throughputContenders(ctx, workload, available))
        if (options.profile) profiles.push(...await profileThroughput(ctx, workload, backend.port, profiled(workload).filter(wanted)))
      } finally {
        await stop(backend.proc)
      }
    } else if (workload === "bulk") {
      const port = await nextPort()
      const server = start("iperf3-server", "iperf3", ["-s", "-p", String(port)], { logFile: Path.join(out, "logs", "iperf3-server.log") })
      notes.push("bulk: iperf3 -c, one stream, client to server, through the contender")
      try {
        await waitPort(port, server)
        await benchThroughput(ctx, workload, port, throughputContenders(ctx, workload, available))
        if (options.profile) profiles.push(...await profileThroughput(ctx, workload, port, profiled(workload).filter(wanted)))
      } finally {
        await stop(server)
      }
    } else {
      const [port, control] = [await nextPort(), await nextPort()] as const
      const sink = start("sink", process.execPath, [Path.join(benchDir, "sink.ts"), String(port), String(control)], {
        logFile: Path.join(out, "logs", "sink.log")
      })
      notes.push(`idle: ${options.idleConnections} idle connections, (RSS after - RSS before) / n of the proxy process, fresh process per reading after a 200-connection warm-up`)
      try {
        await waitPort(control, sink)
        await waitPort(port, sink)
        // nginx's workers are processes of their own: their memory is not one process's to read.
        const ids = throughputContenders(ctx, workload, available).filter((id) => id !== "direct" && id !== "nginx-2")
        await benchIdle(ctx, ids, { port, control })
        if (options.profile) profiles.push(...await profileIdle(ctx, ["pipe", "effect"].filter(wanted), { port, control }))
      } finally {
        await stop(sink)
      }
    }
  }

  const rendered = table(ctx, contenderIds)
  const guarded = samples.filter((s) => s.workload === "churn" && s.contender === "effect-guarded")
  const unguarded = samples.filter((s) => s.workload === "churn" && s.contender === "effect")
  if (guarded.length > 0 && unguarded.length > 0) {
    const ratio = median(guarded.map((s) => s.value)) / median(unguarded.map((s) => s.value))
    notes.push(
      `churn: with a 1,000-range --allow list and per-IP limits, ${ratio.toFixed(2)}x the connections/s of the same proxy without them (target >= 0.90: ${
        ratio >= 0.9 ? "met" : "**missed**"
      })`
    )
  }
  const effectInfo = samples.filter((s) => s.workload === "churn" && s.contender === "effect-info")
  const effectWarn = samples.filter((s) => s.workload === "churn" && s.contender === "effect")
  if (effectInfo.length > 0 && effectWarn.length > 0) {
    const paired = median(effectInfo.flatMap((s) => {
      const w = effectWarn.find((q) => q.round === s.round)
      return w === undefined ? [] : [s.value / w.value]
    }))
    const cpu = (list: ReadonlyArray<Sample>) => median(list.flatMap((s) => s.cpuPerOp === undefined ? [] : [s.cpuPerOp]))
    notes.push(
      `churn: --log-level info vs warn: ${paired.toFixed(2)}x the connections/s (paired median), ${
        (cpu(effectInfo) - cpu(effectWarn)).toFixed(1)
      } µs more proxy CPU per connection`
    )
  }
  const latency = samples.filter((s) => s.workload === "latency").map((s) => s.raw as RateResult)
  if (latency.length > 0) {
    notes.push(
      `latency: the client's send lag (scheduled -> written, part of every latency) ${
        median(latency.map((r) => r.lagMeanMs)).toFixed(3)
      } ms mean, ${median(latency.map((r) => r.lagP99Ms)).toFixed(3)} ms p99; its CPU ${
        (median(latency.map((r) => r.cpuMs)) / 10 / options.duration).toFixed(0)
      } % of a core (medians over the readings)`
    )
  }
  const errors = samples.filter((s) => s.errors !== undefined)
  for (const s of errors) notes.push(`errors: ${s.workload} ${s.contender} round ${s.round}: ${s.errors}`)

  const finished = machine()
  const text = [
    `${info.nproc} CPU(s), ${info.cpu}, Node ${info.node}, kernel ${info.kernel}; ${options.rounds} rounds × ${options.duration}s, interleaved; commit ${info.commit}${
      info.dirty > 0 ? ` + ${info.dirty} changed file(s) in src` : ""
    }; load average ${info.loadavg.map((l) => l.toFixed(2)).join(" ")} at start, ${finished.loadavg.map((l) => l.toFixed(2)).join(" ")} at end`,
    "",
    rendered,
    "",
    "vs pipe: ratio of the medians (latency: pipe / contender, so higher is better); paired: median of the per-round ratios; p50, p99: latency (wrk's, or the rate client's for latency); proxy CPU/op: user+system CPU of the proxy process (nginx: its worker) per request, connection or GB. The pipe proxy again: a second process of the same pipe, measured last in each round; its ratio to the pipe is how far two identical proxies read apart in this run.",
    ...notes.map((note) => `- ${note}`)
  ].join("\n")
  Fs.writeFileSync(Path.join(out, "results.json"), JSON.stringify({ options, machine: info, samples, notes }, null, 2))
  Fs.writeFileSync(Path.join(out, "table.md"), text + "\n")
  if (profiles.length > 0) Fs.writeFileSync(Path.join(out, "profile.md"), profiles.join("\n"))
  if (profiles.length > 0) process.stdout.write("\n" + profiles.join("\n") + "\n")
  process.stdout.write("\n" + text + "\n")
  log(`raw results: ${Path.relative(root, out)}`)
}

main().then(
  () => {
    process.exit(0)
  },
  (error: unknown) => {
    log(`failed: ${error instanceof Error ? error.stack ?? error.message : String(error)}`)
    process.exit(1)
  }
)
