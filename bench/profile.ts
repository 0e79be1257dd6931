/**
 * Summaries of what `node --cpu-prof` and `--heapsnapshot-signal` write, for
 * the profiling pass of bench/run.ts. Also a command:
 *
 *   node bench/profile.ts cpu FILE.cpuprofile [OPS]
 *   node bench/profile.ts heap BEFORE.heapsnapshot AFTER.heapsnapshot CONNECTIONS
 */
import * as Fs from "node:fs"
import * as Path from "node:path"

interface CallFrame {
  readonly functionName: string
  readonly url: string
  readonly lineNumber: number
}
interface ProfileNode {
  readonly id: number
  readonly callFrame: CallFrame
  readonly children?: ReadonlyArray<number>
}
interface CpuProfile {
  readonly nodes: ReadonlyArray<ProfileNode>
  readonly startTime: number
  readonly endTime: number
  readonly samples: ReadonlyArray<number>
  readonly timeDeltas: ReadonlyArray<number>
}

/**
 * Where a frame's self time goes: `ours` is the code under test (the proxy's
 * dist/, or the bench's pipe proxy), `effect` the effect and @effect
 * packages, `node` Node's JavaScript internals (node:net, streams...),
 * `native` V8 builtins and Node's C++ bindings (the read/write/close calls
 * into libuv are here), `gc` the garbage collector, `program` native code
 * outside JavaScript (the event loop, libuv, epoll).
 */
export type Category = "ours" | "effect" | "deps" | "node" | "native" | "gc" | "program" | "idle"

export const categoryOf = (frame: CallFrame): Category => {
  const { functionName, url } = frame
  if (functionName === "(idle)") return "idle"
  if (functionName === "(garbage collector)") return "gc"
  if (functionName === "(program)" || functionName === "(root)") return "program"
  if (url === "") return "native"
  if (url.includes("/node_modules/effect/") || url.includes("/node_modules/@effect/")) return "effect"
  if (url.includes("/node_modules/")) return "deps"
  if (url.startsWith("node:")) return "node"
  return "ours"
}

export interface TopFunction {
  readonly name: string
  readonly where: string
  readonly category: Category
  readonly ms: number
}

export interface CpuSummary {
  /** Sampled time that was not idle, in the window. */
  readonly busyMs: number
  readonly idleMs: number
  /** Self time by category, in ms. */
  readonly self: Record<Category, number>
  /** Time with at least one frame of the category on the stack, in ms (ours, effect, node). */
  readonly onStack: { readonly ours: number; readonly effect: number; readonly node: number }
  readonly top: ReadonlyArray<TopFunction>
  /** Time with the function anywhere on the stack (counted once per sample), for the code under test. */
  readonly inclusiveOurs: ReadonlyArray<TopFunction>
  /** Time by event-loop entry point: the outermost JavaScript frame of each sample. */
  readonly entries: ReadonlyArray<TopFunction>
}

/**
 * Summarises a .cpuprofile. With a window (microseconds on the monotonic
 * clock, the clock of both V8's profiler and `process.hrtime`), only the
 * samples inside it count, so start-up and warm-up are left out.
 */
export const summariseCpuProfile = (
  file: string,
  window?: { readonly startUs: number; readonly endUs: number }
): CpuSummary => {
  const profile = JSON.parse(Fs.readFileSync(file, "utf8")) as CpuProfile
  const byId = new Map<number, ProfileNode>()
  const parent = new Map<number, number>()
  for (const node of profile.nodes) {
    byId.set(node.id, node)
    for (const child of node.children ?? []) parent.set(child, node.id)
  }
  // Self time per node: the time from a sample to the next one.
  const selfUs = new Map<number, number>()
  const total = (inWindow: boolean) => {
    selfUs.clear()
    let t = profile.startTime
    let counted = 0
    for (let i = 0; i < profile.samples.length; i++) {
      t += profile.timeDeltas[i] ?? 0
      const next = profile.timeDeltas[i + 1] ?? 0
      if (inWindow && window !== undefined && (t < window.startUs || t > window.endUs)) continue
      const id = profile.samples[i]!
      selfUs.set(id, (selfUs.get(id) ?? 0) + next)
      counted++
    }
    return counted
  }
  if (total(true) === 0) total(false)

  const stackHas = (id: number, category: Category): boolean => {
    for (let at: number | undefined = id; at !== undefined; at = parent.get(at)) {
      const node = byId.get(at)
      if (node !== undefined && categoryOf(node.callFrame) === category) return true
    }
    return false
  }
  const self: Record<Category, number> = { ours: 0, effect: 0, deps: 0, node: 0, native: 0, gc: 0, program: 0, idle: 0 }
  const onStack = { ours: 0, effect: 0, node: 0 }
  const functions = new Map<string, { name: string; where: string; category: Category; us: number }>()
  const inclusive = new Map<string, { name: string; where: string; category: Category; us: number }>()
  const entries = new Map<string, { name: string; where: string; category: Category; us: number }>()
  const keyOf = (frame: CallFrame) => {
    const name = frame.functionName === "" ? "(anonymous)" : frame.functionName
    const where = frame.url === "" ? "" : `${relativeUrl(frame.url)}:${frame.lineNumber + 1}`
    return { key: `${name} ${where}`, name, where }
  }
  const add = (map: typeof functions, frame: CallFrame, us: number) => {
    const { key, name, where } = keyOf(frame)
    const entry = map.get(key) ?? { name, where, category: categoryOf(frame), us: 0 }
    entry.us += us
    map.set(key, entry)
  }
  for (const [id, us] of selfUs) {
    const node = byId.get(id)!
    const category = categoryOf(node.callFrame)
    self[category] += us / 1000
    if (category === "idle") continue
    if (stackHas(id, "ours")) onStack.ours += us / 1000
    if (stackHas(id, "effect")) onStack.effect += us / 1000
    if (stackHas(id, "node")) onStack.node += us / 1000
    const seen = new Set<string>()
    let outermost: CallFrame | undefined
    for (let at: number | undefined = id; at !== undefined; at = parent.get(at)) {
      const frame = byId.get(at)!.callFrame
      const category = categoryOf(frame)
      if (category === "program") continue
      outermost = frame
      if (category !== "ours") continue
      const { key } = keyOf(frame)
      if (seen.has(key)) continue
      seen.add(key)
      add(inclusive, frame, us)
    }
    if (outermost !== undefined) add(entries, outermost, us)
    const { functionName, url, lineNumber } = node.callFrame
    const name = functionName === "" ? "(anonymous)" : functionName
    const where = url === "" ? "" : `${relativeUrl(url)}:${lineNumber + 1}`
    const key = `${name} ${where}`
    const entry = functions.get(key) ?? { name, where, category, us: 0 }
    entry.us += us
    functions.set(key, entry)
  }
  const sorted = (map: typeof functions) =>
    [...map.values()]
      .sort((a, b) => b.us - a.us)
      .map(({ category, name, us, where }) => ({ name, where, category, ms: us / 1000 }))
  const top = sorted(functions)
  const busyMs = Object.entries(self).reduce((sum, [category, ms]) => category === "idle" ? sum : sum + ms, 0)
  return { busyMs, idleMs: self.idle, self, onStack, top, inclusiveOurs: sorted(inclusive), entries: sorted(entries) }
}

const relativeUrl = (url: string): string => {
  const modules = url.lastIndexOf("/node_modules/")
  if (modules >= 0) return url.slice(modules + "/node_modules/".length)
  const dist = url.lastIndexOf("/dist/")
  if (dist >= 0) return url.slice(dist + 1)
  const bench = url.lastIndexOf("/bench/")
  if (bench >= 0) return url.slice(bench + 1)
  return url.replace(/^file:\/\//, "")
}

const pct = (part: number, whole: number) => whole > 0 ? `${(100 * part / whole).toFixed(1)}%` : "-"

/** A text report of a CPU summary; with `ops`, also the busy CPU per operation. */
export const formatCpuSummary = (
  title: string,
  summary: CpuSummary,
  ops?: { readonly count: number; readonly label: string; readonly perUnit: number; readonly unit: string }
): string => {
  const lines: Array<string> = []
  const { busyMs, self, onStack } = summary
  lines.push(`## ${title}`)
  const perOp = ops !== undefined && ops.count > 0 ? `, ${(busyMs * ops.perUnit / ops.count).toFixed(2)} ${ops.unit}` : ""
  lines.push(`busy ${busyMs.toFixed(0)} ms (main thread), idle ${summary.idleMs.toFixed(0)} ms${ops ? `, ${ops.count} ${ops.label}` : ""}${perOp}`)
  lines.push(
    "self time by category: " +
      (["ours", "effect", "deps", "node", "native", "gc", "program"] as const)
        .filter((category) => self[category] > 0)
        .map((category) => `${category} ${pct(self[category], busyMs)}`)
        .join(", ")
  )
  lines.push(
    `on the stack (inclusive): ours ${pct(onStack.ours, busyMs)}, effect ${pct(onStack.effect, busyMs)}, node ${
      pct(onStack.node, busyMs)
    }`
  )
  lines.push(`top self time (share of busy, ms${ops !== undefined && ops.count > 0 ? `, ${ops.unit.split(" ")[0]} per ${ops.label.replace(/s$/, "")}` : ""}):`)
  for (const entry of summary.top.slice(0, 15)) {
    lines.push(row(entry, busyMs, ops))
  }
  const mine = summary.top.filter((entry) => entry.category === "ours" || entry.category === "effect").slice(0, 12)
  if (mine.length > 0) {
    lines.push("top self time in ours + effect:")
    for (const entry of mine) {
      lines.push(row(entry, busyMs, ops) + (entry.category === "ours" ? source(entry.where) : ""))
    }
  }
  if (summary.entries.length > 0) {
    lines.push("by event-loop entry (outermost JavaScript frame, inclusive):")
    for (const entry of summary.entries.slice(0, 8)) lines.push(row(entry, busyMs, ops))
  }
  if (summary.inclusiveOurs.length > 0) {
    lines.push("inclusive time of the code under test (with everything it calls):")
    for (const entry of summary.inclusiveOurs.slice(0, 12)) lines.push(row(entry, busyMs, ops) + source(entry.where))
  }
  return lines.join("\n") + "\n"
}

const row = (
  entry: TopFunction,
  busyMs: number,
  ops?: { readonly count: number; readonly perUnit: number; readonly unit: string }
) =>
  `  ${pct(entry.ms, busyMs).padStart(6)} ${entry.ms.toFixed(0).padStart(6)} ms${
    ops !== undefined && ops.count > 0 ? ` ${(entry.ms * ops.perUnit / ops.count).toFixed(1).padStart(6)} ${ops.unit.split(" ")[0]}` : ""
  }  ${entry.category.padEnd(7)} ${entry.name}  ${entry.where}`

/** The first characters of the source line at `where` (a dist/ path and line), to tell anonymous functions apart. */
let sourceRoot = ""
export const setSourceRoot = (dir: string) => {
  sourceRoot = dir
}
const source = (where: string): string => {
  const m = /^(.*):(\d+)$/.exec(where)
  if (m === null || sourceRoot === "") return ""
  try {
    const line = Fs.readFileSync(Path.join(sourceRoot, m[1]!), "utf8").split("\n")[Number(m[2]) - 1]?.trim() ?? ""
    return `  | ${line.slice(0, 70)}`
  } catch {
    return ""
  }
}

interface HeapSnapshot {
  readonly snapshot: {
    readonly meta: {
      readonly node_fields: ReadonlyArray<string>
      readonly node_types: ReadonlyArray<ReadonlyArray<string> | string>
    }
  }
  readonly nodes: ReadonlyArray<number>
  readonly strings: ReadonlyArray<string>
}

export interface HeapGroup {
  count: number
  size: number
}

/** Live objects of a heap snapshot grouped by constructor (objects) or by kind (everything else). */
export const heapGroups = (file: string): Map<string, HeapGroup> => {
  const heap = JSON.parse(Fs.readFileSync(file, "utf8")) as HeapSnapshot
  const fields = heap.snapshot.meta.node_fields
  const types = heap.snapshot.meta.node_types[0] as ReadonlyArray<string>
  const typeAt = fields.indexOf("type")
  const nameAt = fields.indexOf("name")
  const sizeAt = fields.indexOf("self_size")
  const groups = new Map<string, HeapGroup>()
  for (let i = 0; i < heap.nodes.length; i += fields.length) {
    const type = types[heap.nodes[i + typeAt]!] ?? "?"
    const name = heap.strings[heap.nodes[i + nameAt]!] ?? ""
    const key = type === "object" || type === "native"
      ? name
      : type === "closure"
      ? `${name || "(anonymous)"}()`
      : type === "array" || type === "hidden"
      ? `(${type}) ${name.slice(0, 40)}`
      : `(${type})`
    const group = groups.get(key) ?? { count: 0, size: 0 }
    group.count++
    group.size += heap.nodes[i + sizeAt]!
    groups.set(key, group)
  }
  return groups
}

/** What the heap gained between two snapshots, per connection held open. */
export const formatHeapDiff = (title: string, before: string, after: string, connections: number): string => {
  const a = heapGroups(before)
  const b = heapGroups(after)
  const rows: Array<{ key: string; count: number; size: number }> = []
  let totalSize = 0
  let totalCount = 0
  for (const [key, group] of b) {
    const old = a.get(key) ?? { count: 0, size: 0 }
    const row = { key, count: group.count - old.count, size: group.size - old.size }
    totalSize += row.size
    totalCount += row.count
    rows.push(row)
  }
  for (const [key, group] of a) if (!b.has(key)) {
    totalSize -= group.size
    totalCount -= group.count
  }
  rows.sort((x, y) => y.size - x.size)
  const lines = [`## ${title}`]
  lines.push(
    `JS heap growth: ${(totalSize / connections).toFixed(0)} bytes and ${(totalCount / connections).toFixed(1)} objects per connection (${connections} connections)`
  )
  lines.push("largest growth, per connection:")
  for (const row of rows.slice(0, 32)) {
    lines.push(`  ${(row.size / connections).toFixed(0).padStart(6)} B  ${(row.count / connections).toFixed(2).padStart(6)} objects  ${row.key}`)
  }
  return lines.join("\n") + "\n"
}

if (import.meta.url === `file://${Path.resolve(process.argv[1] ?? "")}`) {
  const [kind, ...rest] = process.argv.slice(2)
  if (kind === "cpu" && rest[0] !== undefined) {
    const ops = rest[1] === undefined ? undefined : { count: Number(rest[1]), label: "ops", perUnit: 1000, unit: "µs/op" }
    process.stdout.write(formatCpuSummary(rest[0], summariseCpuProfile(rest[0]), ops))
  } else if (kind === "heap" && rest.length === 3) {
    process.stdout.write(formatHeapDiff("heap diff", rest[0]!, rest[1]!, Number(rest[2])))
  } else {
    console.error("usage: profile.ts cpu FILE [OPS] | heap BEFORE AFTER CONNECTIONS")
    process.exit(2)
  }
}
