/**
 * Packaging: the Dockerfile, the compose demo and the Kubernetes manifests
 * refer to things that exist and say what they should; and the package, once
 * packed and installed elsewhere, imports and type-checks from its root.
 */
import { assert, describe, it } from "@effect/vitest"
import { spawn } from "node:child_process"
import { cpSync, existsSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, symlinkSync, writeFileSync } from "node:fs"
import * as Net from "node:net"
import { tmpdir } from "node:os"
import { join, posix, relative, resolve, sep } from "node:path"
import { fileURLToPath } from "node:url"
import { Duration, Effect, Option, Result, Schema } from "effect"
import { parseAllDocuments, parseDocument } from "yaml"
import * as ConfigFile from "../../src/domain/ConfigFile.ts"
import { until } from "./helpers.ts"

const root = fileURLToPath(new URL("../..", import.meta.url))
const inRoot = (...parts: ReadonlyArray<string>): string => join(root, ...parts)
const read = (...parts: ReadonlyArray<string>): string => readFileSync(inRoot(...parts), "utf8")

const PackageJson = Schema.Struct({
  version: Schema.String,
  main: Schema.String,
  types: Schema.String,
  bin: Schema.Record(Schema.String, Schema.String),
  files: Schema.Array(Schema.String)
})
const packageJson = () => Schema.decodeUnknownSync(PackageJson)(JSON.parse(read("package.json")))

// ---------------------------------------------------------------------------
// Dockerfile
// ---------------------------------------------------------------------------

/** One Dockerfile instruction, continuation lines joined, in the stage it belongs to. */
interface Instruction {
  readonly keyword: string
  readonly args: string
  /** The index of its stage (the FROM it follows). */
  readonly stage: number
}

const instructions = (text: string): ReadonlyArray<Instruction> => {
  const result: Array<Instruction> = []
  let pending = ""
  let stage = -1
  for (const raw of text.split(/\r?\n/)) {
    const line = raw.trim()
    if (line === "" || line.startsWith("#")) continue
    if (line.endsWith("\\")) {
      pending += `${line.slice(0, -1)} `
      continue
    }
    const full = pending + line
    pending = ""
    const space = full.search(/\s/)
    const keyword = (space === -1 ? full : full.slice(0, space)).toUpperCase()
    if (keyword === "FROM") stage += 1
    result.push({ keyword, args: space === -1 ? "" : full.slice(space).trim(), stage })
  }
  return result
}

const StringList = Schema.Array(Schema.String)

/** The words of an exec-form (`["a", "b"]`) or shell-form argument list. */
const words = (args: string): ReadonlyArray<string> =>
  args.startsWith("[") ? Schema.decodeUnknownSync(StringList)(JSON.parse(args)) : args.split(/\s+/)

const copyFlag = /^--([a-z-]+)(?:=(\S*))?\s+/

/** A COPY's `--from` stage, if any, and its sources (every word but the destination). */
const copyOf = (args: string) => {
  let rest = args.trim()
  const flags = new Map<string, string>()
  for (let flag = copyFlag.exec(rest); flag !== null; flag = copyFlag.exec(rest)) {
    flags.set(flag[1] ?? "", flag[2] ?? "")
    rest = rest.slice(flag[0].length)
  }
  return { from: Option.fromNullishOr(flags.get("from")), sources: words(rest).slice(0, -1) }
}

/** Whether a `.dockerignore` pattern leaves `path` (relative to the context) out of the build context. */
const ignores = (pattern: string, path: string): boolean => {
  const p = pattern.replace(/^\/+|\/+$/g, "")
  if (p.includes("*")) {
    const regex = new RegExp(`^${p.split("*").map((part) => part.replace(/[.+?^${}()|[\]\\]/g, "\\$&")).join("[^/]*")}(/|$)`)
    return regex.test(path)
  }
  return path === p || path.startsWith(`${p}/`)
}

const TsconfigBuild = Schema.Struct({
  compilerOptions: Schema.Struct({ outDir: Schema.String, rootDir: Schema.String }),
  include: Schema.Array(Schema.String)
})

describe("Dockerfile", () => {
  it.live("copies what exists, builds, and runs `tcp-proxy` as a non-root user", () =>
    Effect.sync(() => {
      const all = instructions(read("Dockerfile"))
      const froms = all.filter((i) => i.keyword === "FROM")
      assert.strictEqual(froms.length, 2, "a build stage and a runtime stage")
      for (const from of froms) assert.match(from.args, /^node:24-slim(\s|$)/)
      const buildName = /\sAS\s+(\S+)$/i.exec(froms[0]?.args ?? "")?.[1]
      assert.isDefined(buildName, "the build stage is named")
      const runtime = froms.length - 1
      const workdir = (stage: number) => all.filter((i) => i.stage === stage && i.keyword === "WORKDIR").at(-1)?.args ?? "/"

      // The build stage installs, builds, then drops the dev dependencies, in that order.
      const buildRuns = all.filter((i) => i.stage === 0 && i.keyword === "RUN").map((i) => i.args).join(" && ")
      const steps = ["npm ci", "npm run build", "npm prune --omit=dev"].map((step) => buildRuns.indexOf(step))
      assert.isTrue(steps.every((at) => at >= 0), `build stage runs npm ci, npm run build, npm prune: ${buildRuns}`)
      assert.deepStrictEqual([...steps].sort((a, b) => a - b), steps, "in that order")

      // What `npm run build` turns into dist/.
      const build = Schema.decodeUnknownSync(TsconfigBuild)(JSON.parse(read("tsconfig.build.json")))
      assert.strictEqual(posix.normalize(build.compilerOptions.outDir), "dist")
      assert.isTrue(existsSync(inRoot(build.compilerOptions.rootDir)))
      const pkg = packageJson()
      const builtFrom = (distPath: string): string =>
        join(build.compilerOptions.rootDir, posix.relative("dist", distPath)).replace(/\.js$/, ".ts")

      const ignorePatterns = read(".dockerignore").split(/\r?\n/).map((l) => l.trim())
        .filter((l) => l !== "" && !l.startsWith("#") && !l.startsWith("!"))
      for (const kept of ["node_modules", "dist", ".git"]) assert.include(ignorePatterns, kept, `.dockerignore leaves out ${kept}`)

      const copies = all.filter((i) => i.keyword === "COPY" || i.keyword === "ADD")
      assert.isAbove(copies.length, 0)
      for (const instruction of copies) {
        const copy = copyOf(instruction.args)
        assert.isAbove(copy.sources.length, 0, `COPY ${instruction.args}`)
        for (const source of copy.sources) {
          if (Option.isNone(copy.from)) {
            const path = posix.normalize(source).replace(/\/$/, "")
            assert.isTrue(existsSync(inRoot(path)), `COPY source ${source} exists`)
            for (const pattern of ignorePatterns) {
              assert.isFalse(ignores(pattern, path), `.dockerignore's ${pattern} leaves out COPY source ${source}`)
            }
          } else {
            assert.strictEqual(copy.from.value, buildName, `COPY --from names the build stage: ${instruction.args}`)
            const inBuild = posix.relative(workdir(0), posix.resolve(workdir(0), source))
            if (inBuild === "dist") {
              assert.isTrue(existsSync(inRoot(build.compilerOptions.rootDir)))
            } else if (inBuild.startsWith("dist/")) {
              assert.isTrue(existsSync(inRoot(builtFrom(inBuild))), `${source} is built from ${builtFrom(inBuild)}`)
            } else if (inBuild === "node_modules") {
              assert.isTrue(existsSync(inRoot("package-lock.json")), "npm ci installs from package-lock.json")
            } else {
              assert.isTrue(existsSync(inRoot(inBuild)), `${source} exists in the repository`)
            }
          }
        }
      }
      // The package's own entry points are built from sources that exist.
      for (const target of [pkg.main, ...Object.values(pkg.bin)]) {
        assert.isTrue(existsSync(inRoot(builtFrom(posix.normalize(target)))), `${target} is built from ${builtFrom(target)}`)
      }

      // Runtime: a non-root user, and `tcp-proxy` on PATH pointing at the package's bin.
      const runtimeOf = (keyword: string) => all.filter((i) => i.stage === runtime && i.keyword === keyword)
      const user = runtimeOf("USER").at(-1)?.args.split(":")[0]
      assert.isDefined(user, "the runtime stage sets a USER")
      assert.notInclude(["root", "0"], user)
      assert.deepStrictEqual(words(runtimeOf("ENTRYPOINT").at(-1)?.args ?? ""), ["tcp-proxy"])
      assert.deepStrictEqual(words(runtimeOf("CMD").at(-1)?.args ?? ""), ["--help"])
      assert.include(runtimeOf("EXPOSE").flatMap((i) => words(i.args)), "4000")
      const runs = runtimeOf("RUN").map((i) => i.args).join(" && ")
      const link = /ln\s+-s\s+(\S+)\s+(\S+)/.exec(runs)
      assert.isNotNull(link, `the runtime stage links tcp-proxy onto PATH: ${runs}`)
      const binTarget = pkg.bin["tcp-proxy"]
      assert.isDefined(binTarget)
      const target = posix.resolve(workdir(runtime), binTarget ?? "")
      assert.strictEqual(link?.[1], target, "the link points at the package's bin")
      assert.strictEqual(link?.[2], "/usr/local/bin/tcp-proxy")
      assert.match(runs, new RegExp(`chmod \\+x \\S*${posix.basename(target).replace(".", "\\.")}`), "the bin is executable")
    }))
})

// ---------------------------------------------------------------------------
// docker-compose.yml
// ---------------------------------------------------------------------------

const ComposeService = Schema.Struct({
  image: Schema.String,
  build: Schema.Struct({ context: Schema.String, dockerfile: Schema.String }),
  entrypoint: Schema.optionalKey(StringList),
  command: StringList,
  ports: Schema.optionalKey(StringList),
  environment: Schema.optionalKey(Schema.Record(Schema.String, Schema.String)),
  depends_on: Schema.optionalKey(StringList)
})
const Compose = Schema.Struct({ services: Schema.Record(Schema.String, ComposeService) })

/** The data in a single-document YAML file, failing on any syntax error. */
const yamlData = (text: string, file: string): unknown => {
  const document = parseDocument(text)
  assert.deepStrictEqual(document.errors.map((e) => e.message), [], `${file} parses`)
  return document.toJS()
}

const backendNames = ["backend-1", "backend-2", "backend-3"] as const

describe("docker-compose demo", () => {
  it.live("a proxy in front of three echo backends, all from the repository's image", () =>
    Effect.sync(() => {
      const compose = Schema.decodeUnknownSync(Compose)(
        yamlData(read("example", "docker-compose.yml"), "example/docker-compose.yml")
      )
      assert.deepStrictEqual(Object.keys(compose.services).sort(), ["proxy", ...backendNames].sort())
      for (const service of Object.values(compose.services)) {
        const context = resolve(inRoot("example"), service.build.context)
        assert.isTrue(existsSync(join(context, service.build.dockerfile)), `build ${service.build.context}`)
        assert.strictEqual(relative(root, context), "", "built from the repository root")
      }
      const proxy = compose.services["proxy"]
      assert.isDefined(proxy)
      assert.strictEqual(proxy?.entrypoint, undefined, "the proxy runs the image's tcp-proxy entrypoint")
      const command = proxy?.command ?? []
      const laddr = command.indexOf("--laddr")
      assert.strictEqual(command[laddr + 1], ":4000")
      for (const name of backendNames) assert.include(command, `${name}:9000`)
      assert.isTrue((proxy?.ports ?? []).some((p) => /(^|:)4000:4000$/.test(p)), "publishes 4000")
      assert.deepStrictEqual([...(proxy?.depends_on ?? [])].sort(), [...backendNames])
      for (const name of backendNames) {
        const echo = compose.services[name]
        assert.isDefined(echo)
        assert.deepStrictEqual(echo?.entrypoint, ["node"])
        assert.deepStrictEqual(echo?.command, ["example/echo-server.ts", "9000", name])
        assert.strictEqual(echo?.environment?.["HOST"], "0.0.0.0", "reachable from the proxy's container")
        assert.strictEqual(echo?.image, proxy?.image)
      }
      assert.isTrue(existsSync(inRoot("example", "echo-server.ts")))
    }))

  // The containers above rely on it: the echo server must listen where HOST says, not only on 127.0.0.1.
  it.live.skipIf(process.platform !== "linux")("the echo server listens on the HOST it is given", () =>
    Effect.gen(function*() {
      const host = "127.0.0.2" // loopback, but not the echo server's default
      const port = yield* freePort(host)
      const echo = yield* spawnProcess(process.execPath, [inRoot("example", "echo-server.ts"), String(port), "echo-x"], {
        cwd: root,
        env: { ...process.env, HOST: host }
      })
      yield* until("the echo server to say where it listens", () => echo.stdout().includes("listening on"))
      assert.include(echo.stdout(), `listening on ${host}:${port}`)
      assert.strictEqual(yield* echoOnce(host, port, "hi\n"), "[echo-x] hi\n")
    }))
})

/** A port free on `host` right now (bound, then released). */
const freePort = (host: string) =>
  Effect.callback<number>((resume) => {
    const srv = Net.createServer()
    srv.once("error", (error) => resume(Effect.die(error)))
    srv.listen(0, host, () => {
      const bound = srv.address()
      const port = bound !== null && typeof bound === "object" ? bound.port : 0
      srv.close(() => resume(Effect.succeed(port)))
    })
  })

/** Sends `text`, half-closes, and returns everything the server sent back. */
const echoOnce = (host: string, port: number, text: string) =>
  Effect.callback<string>((resume) => {
    const socket = Net.connect({ host, port })
    let received = ""
    socket.on("data", (chunk: Buffer) => (received += chunk.toString()))
    socket.once("error", (error) => resume(Effect.die(error)))
    socket.once("connect", () => socket.end(text))
    socket.once("close", () => resume(Effect.succeed(received)))
    return Effect.sync(() => socket.destroy())
  }).pipe(Effect.timeout("5 seconds"))

// ---------------------------------------------------------------------------
// Kubernetes manifests
// ---------------------------------------------------------------------------

const Header = Schema.Struct({
  apiVersion: Schema.String,
  kind: Schema.String,
  metadata: Schema.Struct({ name: Schema.String })
})
const Labels = Schema.Record(Schema.String, Schema.String)
const PortRef = Schema.Union([Schema.Number, Schema.String])
const SecurityContext = Schema.Struct({
  runAsNonRoot: Schema.optionalKey(Schema.Boolean),
  runAsUser: Schema.optionalKey(Schema.Number)
})
const Probe = Schema.Struct({
  httpGet: Schema.optionalKey(Schema.Struct({ path: Schema.String, port: PortRef })),
  tcpSocket: Schema.optionalKey(Schema.Struct({ port: PortRef }))
})
const Container = Schema.Struct({
  name: Schema.String,
  image: Schema.String,
  command: Schema.optionalKey(StringList),
  env: Schema.optionalKey(Schema.Array(Schema.Struct({ name: Schema.String, value: Schema.optionalKey(Schema.String) }))),
  ports: Schema.optionalKey(Schema.Array(Schema.Struct({ name: Schema.optionalKey(Schema.String), containerPort: Schema.Number }))),
  readinessProbe: Schema.optionalKey(Probe),
  livenessProbe: Schema.optionalKey(Probe),
  volumeMounts: Schema.optionalKey(Schema.Array(Schema.Struct({ name: Schema.String, mountPath: Schema.String }))),
  securityContext: Schema.optionalKey(SecurityContext)
})
const Deployment = Schema.Struct({
  kind: Schema.Literal("Deployment"),
  metadata: Schema.Struct({ name: Schema.String }),
  spec: Schema.Struct({
    replicas: Schema.Number,
    selector: Schema.Struct({ matchLabels: Labels }),
    template: Schema.Struct({
      metadata: Schema.Struct({ labels: Labels }),
      spec: Schema.Struct({
        securityContext: Schema.optionalKey(SecurityContext),
        containers: Schema.Array(Container),
        volumes: Schema.optionalKey(Schema.Array(Schema.Struct({
          name: Schema.String,
          configMap: Schema.optionalKey(Schema.Struct({ name: Schema.String }))
        })))
      })
    })
  })
})
const Service = Schema.Struct({
  kind: Schema.Literal("Service"),
  metadata: Schema.Struct({ name: Schema.String }),
  spec: Schema.Struct({
    type: Schema.optionalKey(Schema.String),
    clusterIP: Schema.optionalKey(Schema.String),
    selector: Labels,
    ports: Schema.Array(Schema.Struct({ port: Schema.Number, targetPort: Schema.optionalKey(PortRef) }))
  })
})
const ConfigMap = Schema.Struct({
  kind: Schema.Literal("ConfigMap"),
  metadata: Schema.Struct({ name: Schema.String }),
  data: Schema.Record(Schema.String, Schema.String)
})

const kubernetesDir = inRoot("example", "kubernetes")

/** Every document of every manifest, each checked to parse and to have apiVersion, kind and metadata.name. */
const manifests = (): ReadonlyArray<unknown> =>
  readdirSync(kubernetesDir).filter((f) => /\.ya?ml$/.test(f)).sort().flatMap((file) => {
    const docs = Array.from(parseAllDocuments(readFileSync(join(kubernetesDir, file), "utf8")))
    assert.isAbove(docs.length, 0, `${file} has documents`)
    return docs.map((doc, index) => {
      assert.deepStrictEqual(doc.errors.map((e) => e.message), [], `${file} document ${index + 1} parses`)
      const data: unknown = doc.toJS()
      assert.isTrue(Schema.is(Header)(data), `${file} document ${index + 1} has apiVersion, kind and metadata.name`)
      return data
    })
  })

/** The one manifest of `kind` named `name`. */
const find = (docs: ReadonlyArray<unknown>, kind: string, name: string): unknown => {
  const found = docs.filter((d) => Schema.is(Header)(d) && d.kind === kind && d.metadata.name === name)
  assert.strictEqual(found.length, 1, `one ${kind} ${name}`)
  return found[0]
}

/** The number a container port reference (number or port name) stands for. */
const portNumber = (container: typeof Container.Type, port: number | string | undefined): number | undefined =>
  typeof port === "number" ? port : container.ports?.find((p) => p.name === port)?.containerPort

const selects = (selector: typeof Labels.Type, labels: typeof Labels.Type): boolean =>
  Object.keys(selector).length > 0 && Object.entries(selector).every(([k, v]) => labels[k] === v)

describe("Kubernetes manifests", () => {
  it.live("proxy replicas in front of a headless Service, configured with the proxy's own config file", () =>
    Effect.sync(() => {
      const docs = manifests()
      assert.deepStrictEqual(
        readdirSync(kubernetesDir).filter((f) => /\.ya?ml$/.test(f)).sort(),
        ["backends.yaml", "proxy.yaml"]
      )

      // The backends: three echo pods behind a headless Service.
      const echo = Schema.decodeUnknownSync(Deployment)(find(docs, "Deployment", "echo"))
      assert.strictEqual(echo.spec.replicas, 3)
      assert.isTrue(selects(echo.spec.selector.matchLabels, echo.spec.template.metadata.labels))
      const echoContainer = echo.spec.template.spec.containers[0]
      assert.isDefined(echoContainer)
      assert.deepStrictEqual(echoContainer?.command?.slice(0, 3), ["node", "example/echo-server.ts", "9000"])
      assert.strictEqual(echoContainer?.env?.find((e) => e.name === "HOST")?.value, "0.0.0.0")
      const headless = Schema.decodeUnknownSync(Service)(find(docs, "Service", "echo"))
      assert.strictEqual(headless.spec.clusterIP, "None")
      assert.isTrue(selects(headless.spec.selector, echo.spec.template.metadata.labels))
      const echoPort = headless.spec.ports[0]
      assert.isDefined(echoPort)
      assert.strictEqual(echoContainer && portNumber(echoContainer, echoPort?.targetPort ?? echoPort?.port), 9000)

      // The proxy's config file, parsed by the proxy's own parser.
      const configMap = Schema.decodeUnknownSync(ConfigMap)(find(docs, "ConfigMap", "tcp-proxy"))
      const text = configMap.data["proxy.yaml"]
      assert.isDefined(text, "the ConfigMap holds proxy.yaml")
      const parsed = ConfigFile.parse(text ?? "", "proxy.yaml")
      assert.isTrue(Result.isSuccess(parsed), Result.isFailure(parsed) ? parsed.failure.message : "")
      const config = Result.getOrThrow(parsed)
      assert.strictEqual(config.listen?.port, 4000)
      assert.strictEqual(config.balancer, "least-conn")
      assert.strictEqual(Option.getOrUndefined(config.metricsAddress ?? Option.none())?.port, 9090)
      assert.isTrue(config.dnsRefresh !== undefined && Duration.equals(config.dnsRefresh, Duration.seconds(10)))
      assert.deepStrictEqual(
        config.backends?.map((b) => b.address),
        [`${headless.metadata.name}.default.svc.cluster.local:${echoPort?.port}`],
        "the one backend is the headless Service's name"
      )

      // The proxy: two replicas reading that file, probed on /healthz and the listen port.
      const proxy = Schema.decodeUnknownSync(Deployment)(find(docs, "Deployment", "tcp-proxy"))
      assert.strictEqual(proxy.spec.replicas, 2)
      assert.isTrue(selects(proxy.spec.selector.matchLabels, proxy.spec.template.metadata.labels))
      const container = proxy.spec.template.spec.containers[0]
      assert.isDefined(container)
      if (container === undefined) return
      assert.deepStrictEqual(container.command, ["tcp-proxy", "--config", "/etc/tcp-proxy/proxy.yaml"])
      const mount = container.volumeMounts?.find((m) => m.mountPath === "/etc/tcp-proxy")
      assert.isDefined(mount)
      const volume = proxy.spec.template.spec.volumes?.find((v) => v.name === mount?.name)
      assert.strictEqual(volume?.configMap?.name, configMap.metadata.name)
      assert.strictEqual(container.readinessProbe?.httpGet?.path, "/healthz")
      assert.strictEqual(portNumber(container, container.readinessProbe?.httpGet?.port), 9090)
      assert.strictEqual(portNumber(container, container.livenessProbe?.tcpSocket?.port), 4000)
      assert.isTrue(
        proxy.spec.template.spec.securityContext?.runAsNonRoot === true || container.securityContext?.runAsNonRoot === true,
        "runAsNonRoot"
      )
      const service = Schema.decodeUnknownSync(Service)(find(docs, "Service", "tcp-proxy"))
      assert.strictEqual(service.spec.type, "ClusterIP")
      assert.isTrue(selects(service.spec.selector, proxy.spec.template.metadata.labels))
      const servicePort = service.spec.ports[0]
      assert.strictEqual(servicePort?.port, 4000)
      assert.strictEqual(portNumber(container, servicePort?.targetPort ?? servicePort?.port), 4000)
    }))
})

// ---------------------------------------------------------------------------
// npm pack, then install and import elsewhere
// ---------------------------------------------------------------------------

/** A child process and what it has printed so far. */
interface Spawned {
  readonly stdout: () => string
  readonly stderr: () => string
  readonly exit: Effect.Effect<number | string>
}

/** Starts a process, killed when the scope ends if still running. */
const spawnProcess = (
  command: string,
  args: ReadonlyArray<string>,
  options: { readonly cwd: string; readonly env?: NodeJS.ProcessEnv }
) =>
  Effect.acquireRelease(
    Effect.sync(() => {
      const child = spawn(command, args, { cwd: options.cwd, env: options.env ?? process.env, stdio: ["ignore", "pipe", "pipe"] })
      let stdout = ""
      let stderr = ""
      child.stdout.on("data", (chunk: Buffer) => (stdout += chunk.toString()))
      child.stderr.on("data", (chunk: Buffer) => (stderr += chunk.toString()))
      const exited = new Promise<number | string>((done) => {
        child.once("error", (error) => done(error.message))
        child.once("close", (code, signal) => done(code ?? signal ?? "unknown"))
      })
      const spawned: Spawned = { stdout: () => stdout, stderr: () => stderr, exit: Effect.promise(() => exited) }
      return { child, spawned }
    }),
    ({ child }) => Effect.sync(() => child.exitCode === null && child.signalCode === null && child.kill("SIGKILL"))
  ).pipe(Effect.map(({ spawned }) => spawned))

/** Runs a process to its end. */
const run = (command: string, args: ReadonlyArray<string>, cwd: string, env?: NodeJS.ProcessEnv) =>
  Effect.scoped(Effect.gen(function*() {
    const spawned = yield* spawnProcess(command, args, env === undefined ? { cwd } : { cwd, env })
    const code = yield* spawned.exit
    return { code, stdout: spawned.stdout(), stderr: spawned.stderr(), output: `${spawned.stdout()}\n${spawned.stderr()}` }
  }))

/** npm's environment without what an enclosing `npm test`/`npx` run sets for its own package. */
const npmEnv = (): NodeJS.ProcessEnv =>
  Object.fromEntries(
    Object.entries(process.env).filter(([key]) =>
      !/^npm_(package|lifecycle)_/i.test(key) && !/^npm_config_local_prefix$/i.test(key) && key !== "INIT_CWD"
    )
  )

/** A fresh temporary directory, removed when the scope ends. */
const tempDir = (prefix: string) =>
  Effect.acquireRelease(
    Effect.sync(() => mkdtempSync(join(tmpdir(), prefix))),
    (dir) => Effect.sync(() => rmSync(dir, { recursive: true, force: true }))
  )

/** The consumer: imports the package's root, uses its types, checks its exports at run time. */
const appSource = `import { BackendRegistry, Balancer, Config, Metrics, TcpProxy } from "effect-tcp-proxy"

const config: Config.ProxyConfig = Config.make({ backends: [] })
const layer = TcpProxy.layer(config)

// The types are the package's own, not \`any\`: each of these must be an error.
// @ts-expect-error backends are required
Config.make({})
// @ts-expect-error the balancer is one of the names, not a number
const wrong: number = config.balancer
void wrong

const checks: Record<string, boolean> = {
  "TcpProxy.layer": typeof TcpProxy.layer === "function" && typeof layer === "object" && layer !== null,
  "Config.make": config.balancer === "p2c" && config.backends.length === 0,
  "Config.backend": typeof Config.backend === "function",
  BackendRegistry: typeof BackendRegistry === "function" && typeof BackendRegistry.key === "string",
  Balancer: typeof Balancer === "function" && typeof Balancer.key === "string",
  Metrics: typeof Metrics === "function" && typeof Metrics.key === "string"
}
console.log(JSON.stringify(checks))
if (Object.values(checks).some((ok) => !ok)) process.exit(1)
`

const appTsconfig = {
  compilerOptions: {
    module: "nodenext",
    moduleResolution: "nodenext",
    target: "es2024",
    // effect's declarations mention web types (JsonWebKey), hence dom.
    lib: ["es2024", "dom"],
    types: ["node"],
    strict: true,
    skipLibCheck: false,
    noEmit: true,
    allowImportingTsExtensions: true,
    verbatimModuleSyntax: true,
    erasableSyntaxOnly: true
  },
  files: ["app.ts"]
}

/** What is not copied for packing: installs, builds, history, profiles. */
const notCopied = (path: string): boolean =>
  ["node_modules", "dist", ".git", "coverage", "bench/results"].some((p) => path === p || path.startsWith(`${p}/`)) ||
  /\.(tgz|cpuprofile|heapsnapshot)$/.test(path)

describe("package", () => {
  it.live("packs, installs elsewhere, type-checks and imports from its root", () =>
    Effect.gen(function*() {
      const work = yield* tempDir("tcp-proxy-pack-")
      // Packed from a copy, so that its build (`prepare`) leaves the repository's dist/ alone for other tests.
      const source = join(work, "source")
      cpSync(root, source, {
        recursive: true,
        filter: (path) => !notCopied(relative(root, path).split(sep).join("/"))
      })
      symlinkSync(inRoot("node_modules"), join(source, "node_modules"), "junction")
      const packed = yield* run("npm", ["pack", "--pack-destination", work], source, npmEnv())
      assert.strictEqual(packed.code, 0, `npm pack: ${packed.output}`)
      const tarballs = readdirSync(work).filter((f) => f.endsWith(".tgz"))
      assert.strictEqual(tarballs.length, 1, `one tarball: ${packed.output}`)
      const tarball = join(work, tarballs[0] ?? "")

      const app = join(work, "app")
      mkdirSync(app)
      writeFileSync(join(app, "package.json"), JSON.stringify({ name: "pack-check", private: true, type: "module" }))
      writeFileSync(join(app, "tsconfig.json"), JSON.stringify(appTsconfig))
      writeFileSync(join(app, "app.ts"), appSource)
      const install = (mode: string) =>
        run("npm", ["install", mode, "--no-audit", "--no-fund", "--no-package-lock", tarball], app, npmEnv())
      const offline = yield* install("--offline")
      const installed = offline.code === 0 ? offline : yield* install("--prefer-offline")
      assert.strictEqual(installed.code, 0, `npm install: ${installed.output}`)

      // What the tarball holds: the build and the bin, not the sources or tests.
      const pkgDir = join(app, "node_modules", "effect-tcp-proxy")
      const pkg = packageJson()
      const page = ["dist/dashboard/index.html", "dist/dashboard/dashboard.js", "dist/dashboard/dashboard.css"]
      for (const file of [pkg.main, pkg.types, ...Object.values(pkg.bin), ...page, "package.json", "README.md"]) {
        assert.isTrue(existsSync(join(pkgDir, file)), `the package has ${file}`)
      }
      for (const file of ["src", "test", "example", "tsconfig.json"]) {
        assert.isFalse(existsSync(join(pkgDir, file)), `the package leaves out ${file}`)
      }

      const tsc = yield* run(process.execPath, [inRoot("node_modules", "typescript", "bin", "tsc"), "-p", app], app)
      assert.strictEqual(tsc.code, 0, `tsc --noEmit: ${tsc.output}`)

      const imported = yield* run(process.execPath, ["app.ts"], app)
      assert.strictEqual(imported.code, 0, `node app.ts: ${imported.output}`)
      assert.include(imported.stdout, "\"TcpProxy.layer\":true")

      // The installed bin runs.
      const bin = pkg.bin["tcp-proxy"] ?? ""
      const version = yield* run(process.execPath, [join(pkgDir, bin), "--version"], app)
      assert.strictEqual(version.code, 0, version.output)
      assert.strictEqual(version.stdout.trim(), `tcp-proxy v${pkg.version}`)
      if (process.platform !== "win32") {
        assert.isTrue(existsSync(join(app, "node_modules", ".bin", "tcp-proxy")), "npm links the tcp-proxy bin")
      }
    }), { timeout: 120_000 })
})
