/**
 * The `--config` file: YAML or JSON whose keys are the long flag names,
 * decoded with Schema into the settings it gives. A bad file becomes one
 * {@link ConfigFileError} that names the file, where in it, and why.
 *
 * @since 0.1.0
 */
import { dirname, extname, resolve } from "node:path"
import * as Effect from "effect/Effect"
import * as Option from "effect/Option"
import * as Record from "effect/Record"
import * as Result from "effect/Result"
import * as Schema from "effect/Schema"
import * as SchemaAST from "effect/SchemaAST"
import * as SchemaGetter from "effect/SchemaGetter"
import * as SchemaIssue from "effect/SchemaIssue"
import * as Struct from "effect/Struct"
import { parseDocument, type YAMLParseError } from "yaml"
import * as Address from "./Address.ts"
import * as Cidr from "./Cidr.ts"
import * as Config from "./Config.ts"
import { ConfigFileError, maxBytes } from "./ConfigFileError.ts"
import { quote } from "./Text.ts"
import * as DurationText from "./Duration.ts"
import * as ProxyProtocol from "./ProxyProtocol.ts"

export { ConfigFileError, maxBytes } from "./ConfigFileError.ts"

/** What a config file sets: some of the settings (see {@link Config.PartialConfig}). */
export type FileConfig = Config.PartialConfig

// ---------------------------------------------------------------------------
// Reasons
// ---------------------------------------------------------------------------

/** A value as a reason quotes it: strings quoted, lists and maps by kind. */
const shown = (input: unknown): string =>
  typeof input === "string"
    ? quote(input)
    : input === null || input === undefined
    ? "an empty value"
    : Array.isArray(input)
    ? input.length === 0 ? "an empty list" : "a list"
    : typeof input === "object"
    ? "a map"
    : String(input)

const expectedGot = (expected: string, input: unknown): string => `expected ${expected}, got ${shown(input)}`

const lowerFirst = (text: string): string => text.charAt(0).toLowerCase() + text.slice(1)

// ---------------------------------------------------------------------------
// Values
// ---------------------------------------------------------------------------

/** A string, described as `expected` when the file has something else. */
const text = (expected: string) => Schema.String.annotate({ expected })

/** A string that `parse` turns into `to`'s type; its failure text is the reason shown. */
const parsedText = <To extends Schema.Top>(
  to: To,
  expected: string,
  parse: (input: string) => Result.Result<To["Encoded"], string>
) =>
  text(expected).pipe(Schema.decodeTo(to, {
    decode: SchemaGetter.transformEffect((input: string, options) =>
      Result.match(parse(input), {
        onSuccess: Effect.succeed,
        onFailure: (message) => Effect.fail(new SchemaIssue.InvalidValue({ message }, input, options))
      })
    ),
    encode: SchemaGetter.forbiddenEncoding
  }))

/** Go-style (`1m30s`) or Effect-style (`3 seconds`) duration text, within `range`. */
const duration = (range: DurationText.Range) =>
  parsedText(
    Schema.Duration,
    DurationText.expectedWithin(range),
    (input) => Result.mapError(DurationText.parseWithin(input, range), (expected) => expectedGot(expected, input))
  )

/** One of `names`, in any case. */
const choice = <const A extends string>(names: ReadonlyArray<A>) => {
  const expected = `one of ${names.join(", ")}`
  return parsedText(Schema.Literals(names), expected, (input) =>
    Result.fromOption(
      Option.fromUndefinedOr(names.find((name) => name === input.toLowerCase())),
      () => expectedGot(expected, input)
    ))
}

/** An integer no smaller than `minimum`. */
const integer = (minimum: number, expected: string) =>
  Schema.Number.annotate({ expected }).check(
    Schema.isInt({ expected }),
    Schema.isGreaterThanOrEqualTo(minimum, { expected })
  )

const ListenAddress = Schema.Struct({ host: Schema.UndefinedOr(Schema.String), port: Schema.Number })

/** `HOST:PORT`, `:PORT` or `[IPV6]:PORT`. */
const listenAddress = parsedText(
  ListenAddress,
  "an address such as :4000, 127.0.0.1:4000 or [::1]:4000",
  Address.parseListen
)

/** A file path, resolved against `directory` when relative. */
const filePath = (directory: string) =>
  parsedText(
    Schema.String,
    "a file path",
    (input) => input === "" ? Result.fail(expectedGot("a file path", input)) : Result.succeed(resolve(directory, input))
  )

const label = "[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?"
const serverNamePattern = new RegExp(`^(?:\\*\\.)?(?=.{1,253}$)${label}(?:\\.${label})*$`)
const serverNameExpected = "a server name such as api.example.com or *.example.com"

/** An exact server name or a one-label `*.` wildcard, lower-cased. */
const serverName = parsedText(Schema.String, serverNameExpected, (input) => {
  const name = input.toLowerCase()
  return serverNamePattern.test(name) ? Result.succeed(name) : Result.fail(expectedGot(serverNameExpected, input))
})

const CidrRange = Schema.Union([
  Schema.Struct({ family: Schema.Literal(4), network: Schema.Number, prefix: Schema.Number }),
  Schema.Struct({
    family: Schema.Literal(6),
    network: Schema.Tuple([Schema.Number, Schema.Number, Schema.Number, Schema.Number]),
    prefix: Schema.Number
  })
])
const rangesExpected = "address ranges (CIDR) as a list or comma-separated text, such as 10.0.0.0/8, 2001:db8::/32"

/** Address ranges, as a list or as comma-separated text. */
const ranges = Schema.Union([Schema.String, Schema.Array(Schema.String)]).annotate({ expected: rangesExpected }).pipe(
  Schema.decodeTo(Schema.Array(CidrRange), {
    decode: SchemaGetter.transformEffect((input: string | ReadonlyArray<string>, options) =>
      Result.match(Cidr.parseList(input), {
        onSuccess: Effect.succeed,
        onFailure: (message) => Effect.fail(new SchemaIssue.InvalidValue({ message }, input, options))
      })
    ),
    encode: SchemaGetter.forbiddenEncoding
  })
)

const Rate = Schema.Struct({ count: Schema.Number, per: Schema.Duration })

/** `N/DURATION`. */
const rate = parsedText(
  Rate,
  Config.rateExpected,
  (input) => Result.mapError(Config.parseRate(input), (expected) => expectedGot(expected, input))
)

/** A non-empty list of `item`, described as `expected`. */
const nonEmptyList = <S extends Schema.Top>(item: S, expected: string) =>
  Schema.Array(item).annotate({ expected }).check(Schema.isMinLength(1, { expected }))

// ---------------------------------------------------------------------------
// Backends
// ---------------------------------------------------------------------------

const Backend = Schema.Struct({
  address: Schema.String,
  host: Schema.String,
  port: Schema.Number,
  weight: Schema.Number,
  backup: Schema.optionalKey(Schema.Boolean)
})

const backendExpected = "HOST:PORT or { address: HOST:PORT, weight: N, backup: BOOL }"

const BackendEntry = Schema.Struct({
  address: text("HOST:PORT"),
  weight: Schema.optionalKey(integer(1, "a positive integer")),
  backup: Schema.optionalKey(Schema.Boolean.annotate({ expected: "true or false" }))
}).annotate({ expected: backendExpected })

/** A backend from its `HOST:PORT` string or its `{ address, weight }` entry. */
const toBackend = (item: string | typeof BackendEntry.Type, options: SchemaAST.ParseOptions) => {
  const [address, weight, backup, path] = typeof item === "string"
    ? [item, 1, false, []]
    : [item.address, item.weight ?? 1, item.backup ?? false, ["address"]]
  return Result.match(Config.backend(address, weight, backup), {
    onSuccess: Effect.succeed,
    onFailure: (message) =>
      Effect.fail(new SchemaIssue.Pointer(path, new SchemaIssue.InvalidValue({ message }, address, options)))
  })
}

/** One item of a `backends` list. */
const backend = Schema.Union([Schema.String, BackendEntry]).annotate({ expected: backendExpected }).pipe(
  Schema.decodeTo(Backend, {
    decode: SchemaGetter.transformEffect(toBackend),
    encode: SchemaGetter.forbiddenEncoding
  })
)

// ---------------------------------------------------------------------------
// Settings
// ---------------------------------------------------------------------------

/** The optional `tls-cert` / `tls-key` pair, of the file or of a route. */
interface CertificateKeys {
  readonly "tls-cert"?: string
  readonly "tls-key"?: string
}

const certificateKeys = (directory: string) => ({ "tls-cert": filePath(directory), "tls-key": filePath(directory) })

/** `tls-cert` and `tls-key` come together or not at all. */
const certificatePair = Schema.makeFilter((keys: CertificateKeys) =>
  keys["tls-cert"] === undefined && keys["tls-key"] !== undefined
    ? "tls-key is given without tls-cert (both are needed)"
    : keys["tls-cert"] !== undefined && keys["tls-key"] === undefined
    ? "tls-cert is given without tls-key (both are needed)"
    : undefined
)

const certificates = (keys: CertificateKeys): Option.Option<Config.CertificateFiles> =>
  keys["tls-cert"] !== undefined && keys["tls-key"] !== undefined
    ? Option.some({ cert: keys["tls-cert"], key: keys["tls-key"] })
    : Option.none()

/** The payload check keys, of the file or of a route: text as YAML or JSON wrote it (their own escapes). */
const checkKeys = {
  "health-send": text("text to send"),
  "health-expect": text("the text the answer starts with"),
  "health-http": parsedText(
    Schema.String,
    "an HTTP path starting with /",
    (input) => /^\/[\x21-\x7e]*$/.test(input) ? Result.succeed(input) : Result.fail(expectedGot("an HTTP path starting with /", input))
  )
}

interface CheckKeys {
  readonly "health-send"?: string
  readonly "health-expect"?: string
  readonly "health-http"?: string
}

const payloadCheck = (keys: CheckKeys): Config.PayloadCheck => ({
  send: Option.fromUndefinedOr(keys["health-send"]),
  expect: Option.fromUndefinedOr(keys["health-expect"]),
  http: Option.fromUndefinedOr(keys["health-http"])
})

/** The payload check parts the file gives, or nothing when it gives none. */
const fileCheck = (keys: CheckKeys): { readonly check?: Partial<Config.PayloadCheck> } => {
  const given = {
    ...presentSome("send", keys["health-send"]),
    ...presentSome("expect", keys["health-expect"]),
    ...presentSome("http", keys["health-http"])
  }
  return Object.keys(given).length === 0 ? {} : { check: given }
}

const hasCheck = (keys: CheckKeys): boolean =>
  keys["health-send"] !== undefined || keys["health-expect"] !== undefined || keys["health-http"] !== undefined

/** A `routes` item. */
const route = (directory: string) =>
  Schema.Struct({
    sni: nonEmptyList(serverName, "a non-empty list of server names"),
    mode: choice(Config.routeModes),
    lb: Schema.optionalKey(choice(Config.balancerNames)),
    backends: nonEmptyList(backend, "a non-empty list of backends"),
    ...Struct.map(checkKeys, Schema.optionalKey),
    ...Struct.map(certificateKeys(directory), Schema.optionalKey)
  }).annotate({ expected: "a route (a map with sni, mode and backends)" }).check(certificatePair)

/** The whole file: every key optional, relative paths resolved against `directory`. */
const settings = (directory: string) =>
  Schema.Struct(Struct.map({
    laddr: listenAddress,
    lb: choice(Config.balancerNames),
    timeout: duration(DurationText.timeoutRange),
    retries: integer(0, "a non-negative integer"),
    "health-interval": duration(DurationText.intervalRange),
    "health-timeout": duration(DurationText.timeoutRange),
    "healthy-threshold": integer(1, "a positive integer"),
    "unhealthy-threshold": integer(1, "a positive integer"),
    grace: duration(DurationText.timeoutRange),
    "max-connections": integer(1, "a positive integer"),
    "idle-timeout": duration(DurationText.timeoutRange),
    "metrics-addr": listenAddress,
    "proxy-protocol": choice(ProxyProtocol.modes),
    "dns-refresh": duration(DurationText.intervalRange),
    "log-level": choice(Config.logLevels),
    "log-format": choice(Config.logFormats),
    "backend-tls": Schema.Boolean.annotate({ expected: "true or false" }),
    "backend-ca": filePath(directory),
    backends: Schema.Array(backend).annotate({ expected: "a list of backends" }),
    routes: Schema.Array(route(directory)).annotate({ expected: "a list of routes" }),
    allow: ranges,
    deny: ranges,
    "max-connections-per-ip": integer(1, "a positive integer"),
    "connection-rate-per-ip": rate,
    "accept-proxy": ranges,
    "tcp-keepalive": duration(DurationText.timeoutRange),
    ...checkKeys,
    "slow-start": duration(DurationText.timeoutRange),
    "close-on-unhealthy": Schema.Boolean.annotate({ expected: "true or false" }),
    "admin-token-file": filePath(directory),
    workers: Schema.Union([Schema.Number, Schema.String]).annotate({ expected: "a positive integer or auto" }).pipe(
      Schema.decodeTo(Schema.Union([Schema.Number, Schema.Literal("auto")]), {
        decode: SchemaGetter.transformEffect((input: number | string, options) =>
          Result.match(Config.parseWorkers(String(input)), {
            onSuccess: Effect.succeed,
            onFailure: (message) => Effect.fail(new SchemaIssue.InvalidValue({ message }, input, options))
          })
        ),
        encode: SchemaGetter.forbiddenEncoding
      })
    ),
    "otlp-endpoint": parsedText(
      Schema.String,
      "an http:// or https:// URL",
      (input) => /^https?:\/\/\S+$/.test(input) ? Result.succeed(input) : Result.fail(expectedGot("an http:// or https:// URL", input))
    ),
    "otlp-interval": duration(DurationText.intervalRange),
    ...certificateKeys(directory)
  }, Schema.optionalKey)).annotate({ expected: "a map of settings" }).check(certificatePair)

type Settings = ReturnType<typeof settings>["Type"]
type RouteSettings = ReturnType<typeof route>["Type"]

/** `{ key: value }` when the value is there, else nothing. */
const present = <K extends string, A>(key: K, value: A | undefined): { readonly [P in K]?: A } =>
  value === undefined ? {} : Record.singleton(key, value)

/** Like {@link present}, with the value as `Option.some`. */
const presentSome = <K extends string, A>(key: K, value: A | undefined): { readonly [P in K]?: Option.Option<A> } =>
  present(key, value === undefined ? undefined : Option.some(value))

const toRoute = (settings: RouteSettings): Config.Route => ({
  sni: settings.sni,
  mode: settings.mode,
  balancer: Option.fromUndefinedOr(settings.lb),
  backends: settings.backends,
  tls: certificates(settings),
  ...(hasCheck(settings) ? { check: payloadCheck(settings) } : {})
})

/** The health settings the file gives, or nothing when it gives none. */
const health = (settings: Settings): { readonly health?: Partial<Config.HealthSettings> } => {
  const given = {
    ...present("interval", settings["health-interval"]),
    ...present("timeout", settings["health-timeout"]),
    ...present("healthyThreshold", settings["healthy-threshold"]),
    ...present("unhealthyThreshold", settings["unhealthy-threshold"])
  }
  return Object.keys(given).length === 0 ? {} : { health: given }
}

/** Renames the flag-named settings to their {@link Config.ProxyConfig} fields. */
const toFileConfig = (settings: Settings): FileConfig => ({
  ...present("listen", settings.laddr),
  ...present("balancer", settings.lb),
  ...present("dialTimeout", settings.timeout),
  ...present("retries", settings.retries),
  ...health(settings),
  ...present("grace", settings.grace),
  ...present("maxConnections", settings["max-connections"]),
  ...presentSome("idleTimeout", settings["idle-timeout"]),
  ...presentSome("metricsAddress", settings["metrics-addr"]),
  ...present("proxyProtocol", settings["proxy-protocol"]),
  ...present("dnsRefresh", settings["dns-refresh"]),
  ...present("logLevel", settings["log-level"]),
  ...present("logFormat", settings["log-format"]),
  ...presentSome("tls", Option.getOrUndefined(certificates(settings))),
  ...present("backendTls", settings["backend-tls"]),
  ...presentSome("backendCa", settings["backend-ca"]),
  ...present("backends", settings.backends),
  ...present("routes", settings.routes?.map(toRoute)),
  ...present("allow", settings.allow),
  ...present("deny", settings.deny),
  ...presentSome("maxConnectionsPerIp", settings["max-connections-per-ip"]),
  ...presentSome("connectionRatePerIp", settings["connection-rate-per-ip"]),
  ...present("acceptProxy", settings["accept-proxy"]),
  ...presentSome("tcpKeepalive", settings["tcp-keepalive"]),
  ...fileCheck(settings),
  ...presentSome("slowStart", settings["slow-start"]),
  ...present("closeOnUnhealthy", settings["close-on-unhealthy"]),
  ...presentSome("adminTokenFile", settings["admin-token-file"]),
  ...present("workers", settings.workers),
  ...presentSome("otlpEndpoint", settings["otlp-endpoint"]),
  ...present("otlpInterval", settings["otlp-interval"])
})

// ---------------------------------------------------------------------------
// Problems
// ---------------------------------------------------------------------------

/** Where in the file a problem is, and why. */
interface Problem {
  readonly path: ReadonlyArray<PropertyKey>
  readonly reason: string
}

/** `backends[1].weight` from `["backends", 1, "weight"]`. */
const formatPath = (path: ReadonlyArray<PropertyKey>): string =>
  path.map((segment, i) =>
    typeof segment === "number"
      ? `[${segment}]`
      : typeof segment === "string" && /^[A-Za-z_][\w-]*$/.test(segment)
      ? `${i === 0 ? "" : "."}${segment}`
      : `[${quote(String(segment))}]`
  ).join("")

const expectedOf = (annotations: { readonly [key: string]: unknown } | undefined): string | undefined =>
  typeof annotations?.expected === "string" ? annotations.expected : undefined

const messageOf = (annotations: { readonly [key: string]: unknown } | undefined): string | undefined =>
  typeof annotations?.message === "string" ? annotations.message : undefined

/** The edit distance between two keys, for "did you mean". */
const distance = (a: string, b: string): number => {
  let previous = Array.from({ length: b.length + 1 }, (_, j) => j)
  for (let i = 1; i <= a.length; i++) {
    const current = [i]
    for (let j = 1; j <= b.length; j++) {
      const substitution = (previous[j - 1] ?? 0) + (a[i - 1] === b[j - 1] ? 0 : 1)
      current.push(Math.min((previous[j] ?? 0) + 1, (current[j - 1] ?? 0) + 1, substitution))
    }
    previous = current
  }
  return previous[b.length] ?? 0
}

/** The keys an object schema declares. */
const keysOf = (ast: SchemaAST.AST): ReadonlyArray<string> =>
  SchemaAST.isObjects(ast) ? ast.propertySignatures.map((signature) => String(signature.name)) : []

/** `unknown key "timeuot" at the top level (did you mean "timeout"?)`. */
const unknownKey = (key: string, known: ReadonlyArray<string>, topLevel: boolean): string => {
  const where = topLevel ? " at the top level" : ""
  const closest = known
    .filter((candidate) => distance(key, candidate) <= Math.min(2, Math.floor(key.length / 3)))
    .sort((a, b) => distance(key, a) - distance(key, b))[0]
  const hint = closest !== undefined
    ? ` (did you mean "${closest}"?)`
    : known.length > 0
    ? ` (known keys: ${known.join(", ")})`
    : ""
  return `unknown key ${quote(key)}${where}${hint}`
}

/** A problem about the key that ends `path`, reported at its parent. */
const atKey = (path: ReadonlyArray<PropertyKey>, reason: (key: string) => string): Problem => ({
  path: path.slice(0, -1),
  reason: reason(String(path.at(-1)))
})

/** The first problem in a schema issue, with the path to it. */
const firstProblem = (issue: SchemaIssue.Issue, path: ReadonlyArray<PropertyKey>): Problem => {
  switch (issue._tag) {
    case "Pointer":
      return firstProblem(issue.issue, [...path, ...issue.path])
    case "Composite":
      return firstProblem(issue.issues[0], path)
    case "Encoding":
      return firstProblem(issue.issue, path)
    case "AnyOf": {
      const [first] = issue.issues
      return first !== undefined
        ? firstProblem(first, path)
        : { path, reason: expectedGot(expectedOf(issue.ast.annotations) ?? "another value", issue.input) }
    }
    case "Filter": {
      const inner = issue.issue._tag === "InvalidValue" ? messageOf(issue.issue.annotations) : undefined
      const expected = expectedOf(issue.filter.annotations)
      return {
        path,
        reason: inner ?? (expected !== undefined ? expectedGot(expected, issue.input) : firstProblem(issue.issue, []).reason)
      }
    }
    case "InvalidType": {
      const expected = expectedOf(issue.ast.annotations)
      return { path, reason: expected !== undefined ? expectedGot(expected, issue.input) : leafReason(issue) }
    }
    case "InvalidValue":
      return { path, reason: messageOf(issue.annotations) ?? leafReason(issue) }
    case "MissingKey":
      return atKey(path, (key) => `missing key ${quote(key)}`)
    case "UnexpectedKey":
      return atKey(path, (key) => unknownKey(key, keysOf(issue.ast), path.length === 1))
    case "Forbidden":
    case "OneOf":
      return { path, reason: leafReason(issue) }
  }
}

/** Schema's own wording, for issues this module does not word itself. */
const leafReason = (issue: SchemaIssue.Leaf): string => lowerFirst(SchemaIssue.defaultLeafHook(issue))

// ---------------------------------------------------------------------------
// Reading
// ---------------------------------------------------------------------------

const syntaxError = (file: string, reason: string) => new ConfigFileError({ file, path: "", reason })

/** `line 3, column 5: ` for an offset into `text`. */
const lineColumn = (text: string, offset: number): string => {
  const before = text.slice(0, offset).split("\n")
  return `line ${before.length}, column ${(before.at(-1)?.length ?? 0) + 1}: `
}

/**
 * The first key that appears twice in one object of JSON text (which
 * `JSON.parse` accepts, keeping the last), with its offset. The text must be
 * valid JSON.
 */
const duplicateKey = (text: string): { readonly key: string; readonly offset: number } | undefined => {
  const objects: Array<Set<string> | undefined> = []
  for (let i = 0; i < text.length; i++) {
    const char = text[i]
    if (char === "{") objects.push(new Set())
    else if (char === "[") objects.push(undefined)
    else if (char === "}" || char === "]") objects.pop()
    else if (char === "\"") {
      const start = i
      for (i++; text[i] !== "\""; i++) if (text[i] === "\\") i++
      // A string followed by a colon, inside an object, is a key.
      let next = i + 1
      while (next < text.length && /\s/.test(text[next] ?? "")) next++
      const keys = objects.at(-1)
      if (text[next] === ":" && keys !== undefined) {
        const key: unknown = JSON.parse(text.slice(start, i + 1))
        if (typeof key === "string") {
          if (keys.has(key)) return { key, offset: start }
          keys.add(key)
        }
      }
    }
  }
  return undefined
}

/** The data in JSON text; blank text is an empty file. */
const parseJson = (text: string, file: string): Result.Result<unknown, ConfigFileError> =>
  Result.flatMap(
    Result.try({
      try: (): unknown => text.trim() === "" ? {} : JSON.parse(text),
      catch: (error) => {
        const message = error instanceof Error ? error.message : String(error)
        const position = / in JSON at position (\d+)/.exec(message)
        const where = position === null ? "" : lineColumn(text, Number(position[1]))
        return syntaxError(file, `${where}${lowerFirst(message.replace(/ in JSON at position .*$/, ""))}`)
      }
    }),
    (data) => {
      const duplicate = duplicateKey(text)
      return duplicate === undefined
        ? Result.succeed(data)
        : Result.fail(syntaxError(file, `${lineColumn(text, duplicate.offset)}duplicate key ${quote(duplicate.key)}`))
    }
  )

/** A YAML parser's complaint without its position and excerpt. */
const yamlReason = (error: YAMLParseError): string =>
  error.code === "MULTIPLE_DOCS"
    ? "more than one YAML document (expected one)"
    : lowerFirst(error.message.replace(/ at line \d+, column \d+:[\s\S]*$/, ""))

/** The data in YAML text; an empty document is an empty file. */
const parseYaml = (text: string, file: string): Result.Result<unknown, ConfigFileError> => {
  const document = parseDocument(text)
  const [error] = document.errors
  if (error !== undefined) {
    const position = error.linePos?.[0]
    const where = position === undefined ? "" : `line ${position.line}, column ${position.col}: `
    return Result.fail(syntaxError(file, `${where}${yamlReason(error)}`))
  }
  // Aliases are expanded here: a document that would expand to a huge value (an alias bomb) is refused.
  return Result.try({
    try: (): unknown => document.toJS({ maxAliasCount: maxAliases }) ?? {},
    catch: () => syntaxError(file, `too many aliases (more than ${maxAliases} expanded): an alias-expansion bomb?`)
  })
}

/** The most alias expansions a YAML config file may make. */
const maxAliases = 100

/** Parses a config file's text: JSON for a `.json` file, YAML for anything else. */
export const parse = (text: string, file: string): Result.Result<FileConfig, ConfigFileError> => {
  if (text.length > maxBytes) return Result.fail(syntaxError(file, `larger than ${maxBytes / 1024 / 1024} MiB`))
  const decode = Schema.decodeUnknownResult(settings(dirname(file)), { onExcessProperty: "error", reportInput: true })
  return Result.flatMap(
    extname(file).toLowerCase() === ".json" ? parseJson(text, file) : parseYaml(text, file),
    (data) =>
      Result.match(decode(data), {
        onSuccess: (settings) => Result.succeed(toFileConfig(settings)),
        onFailure: (error) => {
          const problem = firstProblem(error.issue, [])
          return Result.fail(new ConfigFileError({ file, path: formatPath(problem.path), reason: problem.reason }))
        }
      })
  )
}

/** `base` with what the file gives laid over it (see {@link Config.apply}). */
export const apply = Config.apply
