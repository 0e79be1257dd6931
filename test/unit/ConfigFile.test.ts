import { mkdtempSync, rmSync, writeFileSync } from "node:fs"
import { tmpdir } from "node:os"
import { join } from "node:path"
import { assert, describe, it } from "@effect/vitest"
import { Duration, Effect, Option, Result } from "effect"
import * as Config from "../../src/domain/Config.ts"
import * as ConfigSource from "../../src/cli/ConfigSource.ts"
import * as ConfigFile from "../../src/domain/ConfigFile.ts"

/** The parsed file, failing the test with the error's message when it was rejected. */
const parsed = (text: string, file = "/etc/tcp-proxy/proxy.yaml"): ConfigFile.FileConfig => {
  const result = ConfigFile.parse(text, file)
  if (Result.isFailure(result)) return assert.fail(`expected success, got "${result.failure.message}"`)
  return result.success
}

/** The one-line message of the error, failing the test when the file was accepted. */
const rejected = (text: string, file = "proxy.yaml"): string => {
  const result = ConfigFile.parse(text, file)
  if (Result.isSuccess(result)) return assert.fail(`expected a failure, got ${JSON.stringify(result.success)}`)
  return result.failure.message
}

const backend = (address: string, weight = 1): Config.Backend => {
  const result = Config.backend(address, weight)
  if (Result.isFailure(result)) return assert.fail(result.failure)
  return result.success
}

const everyKeyYaml = `
# every key the file takes
laddr: 127.0.0.1:4000
lb: least-conn
timeout: 2s
retries: 1
health-interval: 10s
health-timeout: 500ms
healthy-threshold: 2
unhealthy-threshold: 4
grace: 1m30s
max-connections: 100
idle-timeout: 5 minutes
metrics-addr: 127.0.0.1:9100
proxy-protocol: v2
dns-refresh: 1m
log-level: debug
log-format: json
tls-cert: certs/proxy.pem
tls-key: certs/proxy.key
backend-tls: true
backend-ca: /etc/ssl/ca.pem
backends:
  - 10.0.0.1:8000
  - { address: "[::1]:8001", weight: 3 }
routes:
  - sni: ["api.example.com", "*.api.example.com"]
    mode: passthrough
    lb: round-robin
    backends: ["127.0.0.1:9443"]
  - sni: ["web.example.com"]
    mode: terminate
    tls-cert: web.pem
    tls-key: web.key
    backends: [{ address: "127.0.0.1:8080", weight: 2 }]
`

const everyKeyJson = JSON.stringify({
  laddr: "127.0.0.1:4000",
  lb: "least-conn",
  timeout: "2s",
  retries: 1,
  "health-interval": "10s",
  "health-timeout": "500ms",
  "healthy-threshold": 2,
  "unhealthy-threshold": 4,
  grace: "1m30s",
  "max-connections": 100,
  "idle-timeout": "5 minutes",
  "metrics-addr": "127.0.0.1:9100",
  "proxy-protocol": "v2",
  "dns-refresh": "1m",
  "log-level": "debug",
  "log-format": "json",
  "tls-cert": "certs/proxy.pem",
  "tls-key": "certs/proxy.key",
  "backend-tls": true,
  "backend-ca": "/etc/ssl/ca.pem",
  backends: ["10.0.0.1:8000", { address: "[::1]:8001", weight: 3 }],
  routes: [
    { sni: ["api.example.com", "*.api.example.com"], mode: "passthrough", lb: "round-robin", backends: ["127.0.0.1:9443"] },
    {
      sni: ["web.example.com"],
      mode: "terminate",
      "tls-cert": "web.pem",
      "tls-key": "web.key",
      backends: [{ address: "127.0.0.1:8080", weight: 2 }]
    }
  ]
}, null, 2)

const everyKey: ConfigFile.FileConfig = {
  listen: { host: "127.0.0.1", port: 4000 },
  balancer: "least-conn",
  dialTimeout: Duration.seconds(2),
  retries: 1,
  health: {
    interval: Duration.seconds(10),
    timeout: Duration.millis(500),
    healthyThreshold: 2,
    unhealthyThreshold: 4
  },
  grace: Duration.seconds(90),
  maxConnections: 100,
  idleTimeout: Option.some(Duration.minutes(5)),
  metricsAddress: Option.some({ host: "127.0.0.1", port: 9100 }),
  proxyProtocol: "v2",
  dnsRefresh: Duration.minutes(1),
  logLevel: "debug",
  logFormat: "json",
  tls: Option.some({ cert: "/etc/tcp-proxy/certs/proxy.pem", key: "/etc/tcp-proxy/certs/proxy.key" }),
  backendTls: true,
  backendCa: Option.some("/etc/ssl/ca.pem"),
  backends: [backend("10.0.0.1:8000"), backend("[::1]:8001", 3)],
  routes: [
    {
      sni: ["api.example.com", "*.api.example.com"],
      mode: "passthrough",
      balancer: Option.some("round-robin"),
      backends: [backend("127.0.0.1:9443")],
      tls: Option.none()
    },
    {
      sni: ["web.example.com"],
      mode: "terminate",
      balancer: Option.none(),
      backends: [backend("127.0.0.1:8080", 2)],
      tls: Option.some({ cert: "/etc/tcp-proxy/web.pem", key: "/etc/tcp-proxy/web.key" })
    }
  ]
}

describe("ConfigFile.parse", () => {
  it("reads every key of a YAML file into the config fields", () => {
    assert.deepStrictEqual(parsed(everyKeyYaml), everyKey)
  })

  it("reads the same settings from the equivalent JSON file", () => {
    assert.deepStrictEqual(parsed(everyKeyJson, "/etc/tcp-proxy/proxy.json"), parsed(everyKeyYaml))
  })

  it("treats an empty document as an empty config", () => {
    assert.deepStrictEqual(parsed(""), {})
    assert.deepStrictEqual(parsed("# only a comment\n"), {})
    assert.deepStrictEqual(parsed("", "proxy.json"), {})
  })

  it("gives only the keys the file has, the health settings one by one", () => {
    assert.deepStrictEqual(parsed("healthy-threshold: 5\nlb: hash"), {
      balancer: "hash",
      health: { healthyThreshold: 5 }
    })
  })

  it("takes backends as HOST:PORT strings and { address, weight } entries", () => {
    const config = parsed(`
backends:
  - 10.0.0.1:8000
  - address: backend.internal:9000
  - { address: "[2001:db8::1]:443", weight: 5 }
`)
    assert.deepStrictEqual(config.backends, [
      backend("10.0.0.1:8000"),
      backend("backend.internal:9000"),
      backend("[2001:db8::1]:443", 5)
    ])
    assert.strictEqual(config.backends?.[2]?.address, "[2001:db8::1]:443")
  })

  it("accepts names in any case and lower-cases server names", () => {
    const config = parsed(`
lb: Round-Robin
proxy-protocol: V1
log-level: WARN
log-format: Json
routes:
  - sni: [API.Example.COM, "*.Example.com"]
    mode: PassThrough
    lb: LEAST-CONN
    backends: [127.0.0.1:9443]
`)
    assert.strictEqual(config.balancer, "round-robin")
    assert.strictEqual(config.proxyProtocol, "v1")
    assert.strictEqual(config.logLevel, "warn")
    assert.strictEqual(config.logFormat, "json")
    const [route] = config.routes ?? []
    assert.deepStrictEqual(route?.sni, ["api.example.com", "*.example.com"])
    assert.strictEqual(route?.mode, "passthrough")
    assert.deepStrictEqual(route?.balancer, Option.some("least-conn"))
  })

  it("takes Go-style and Effect-style durations", () => {
    const config = parsed("timeout: 1m30s\ngrace: 3 seconds\nhealth-interval: 250ms")
    assert.deepStrictEqual(config.dialTimeout, Duration.seconds(90))
    assert.deepStrictEqual(config.grace, Duration.seconds(3))
    assert.deepStrictEqual(config.health, { interval: Duration.millis(250) })
  })

  it("takes :PORT as a listen address on every interface", () => {
    assert.deepStrictEqual(parsed("laddr: \":4000\"").listen, { host: undefined, port: 4000 })
  })

  it("resolves relative certificate and CA paths against the file's directory", () => {
    const config = parsed(
      `
tls-cert: proxy.pem
tls-key: ../keys/proxy.key
backend-ca: ca/bundle.pem
routes:
  - sni: [web.example.com]
    mode: terminate
    tls-cert: web/cert.pem
    tls-key: /abs/web.key
    backends: [127.0.0.1:8080]
`,
      "/srv/proxy/conf/proxy.yaml"
    )
    assert.deepStrictEqual(config.tls, Option.some({ cert: "/srv/proxy/conf/proxy.pem", key: "/srv/proxy/keys/proxy.key" }))
    assert.deepStrictEqual(config.backendCa, Option.some("/srv/proxy/conf/ca/bundle.pem"))
    assert.deepStrictEqual(
      config.routes?.[0]?.tls,
      Option.some({ cert: "/srv/proxy/conf/web/cert.pem", key: "/abs/web.key" })
    )
  })
})

describe("ConfigFile.parse: who may connect", () => {
  it("takes ranges as a list or as comma-separated text, per-IP limits, accept-proxy and keepalive", () => {
    const config = parsed(`
allow: [10.0.0.0/8, "2001:db8::/32"]
deny: 10.1.0.0/16, 192.0.2.1
max-connections-per-ip: 20
connection-rate-per-ip: 100/1m
accept-proxy: 10.0.0.5
tcp-keepalive: 45s
`)
    assert.deepStrictEqual(config.allow?.map((range) => range.family), [4, 6])
    assert.deepStrictEqual(config.deny?.map((range) => range.prefix), [16, 32])
    assert.deepStrictEqual(config.maxConnectionsPerIp, Option.some(20))
    assert.deepStrictEqual(
      Option.map(config.connectionRatePerIp ?? Option.none(), (rate) => [rate.count, Duration.toMillis(rate.per)]),
      Option.some([100, 60_000])
    )
    assert.strictEqual(config.acceptProxy?.length, 1)
    assert.deepStrictEqual(Option.map(config.tcpKeepalive ?? Option.none(), Duration.toSeconds), Option.some(45))
  })

  it("rejects a bad range, rate or keepalive, naming the key and the value", () => {
    assert.match(rejected("allow: [10.0.0.300]\n"), /allow.*invalid IP address in "10\.0\.0\.300"/)
    assert.match(rejected("deny: 10.0.0.0/33\n"), /deny.*prefix out of range/)
    assert.match(rejected("connection-rate-per-ip: 5\n"), /connection-rate-per-ip.*N\/DURATION/)
    assert.match(rejected("connection-rate-per-ip: 0/1s\n"), /connection-rate-per-ip.*N\/DURATION/)
    assert.match(rejected("max-connections-per-ip: 0\n"), /max-connections-per-ip.*a positive integer/)
    assert.match(rejected("tcp-keepalive: 0s\n"), /tcp-keepalive.*between 1ms and 24 days/)
  })
})

describe("Config.parseRate", () => {
  it("reads N/DURATION with Go-style and Effect-style durations", () => {
    assert.deepStrictEqual(
      Result.map(Config.parseRate("20/1s"), (rate) => [rate.count, Duration.toMillis(rate.per)]),
      Result.succeed([20, 1000])
    )
    assert.deepStrictEqual(
      Result.map(Config.parseRate(" 3 / 10 seconds "), (rate) => [rate.count, Duration.toMillis(rate.per)]),
      Result.succeed([3, 10_000])
    )
    for (const bad of ["20", "0/1s", "-1/1s", "1/0s", "x/1s", "1/", "1.5/1s"]) {
      assert.isTrue(Result.isFailure(Config.parseRate(bad)), bad)
    }
  })
})

describe("ConfigFile.parse errors", () => {
  it("names the file, where in it and why", () => {
    const result = ConfigFile.parse("backends: [10.0.0.1:8000, { address: 10.0.0.2:8000, weight: 0 }]", "proxy.yaml")
    if (Result.isSuccess(result)) return assert.fail("expected a failure")
    assert.strictEqual(result.failure._tag, "ConfigFileError")
    assert.strictEqual(result.failure.file, "proxy.yaml")
    assert.strictEqual(result.failure.path, "backends[1].weight")
    assert.strictEqual(result.failure.reason, "expected a positive integer, got 0")
  })

  it("rejects an unknown top-level key, suggesting the closest one", () => {
    assert.strictEqual(
      rejected("timeuot: 3s"),
      `proxy.yaml: unknown key "timeuot" at the top level (did you mean "timeout"?)`
    )
    assert.match(rejected("colour: red"), /^proxy\.yaml: unknown key "colour" at the top level \(known keys: laddr, lb, /)
  })

  it("rejects an unknown key inside a backend entry", () => {
    assert.strictEqual(
      rejected("backends:\n  - 10.0.0.1:8000\n  - 10.0.0.2:8000\n  - { address: 10.0.0.3:8000, wieght: 2 }"),
      `proxy.yaml: at backends[2]: unknown key "wieght" (did you mean "weight"?)`
    )
  })

  it("rejects an unknown key in a route", () => {
    assert.strictEqual(
      rejected("routes:\n  - sni: [a.example.com]\n    mode: passthrough\n    backends: [10.0.0.1:443]\n    color: red"),
      `proxy.yaml: at routes[0]: unknown key "color" (known keys: sni, mode, lb, backends, health-send, health-expect, health-http, tls-cert, tls-key)`
    )
  })

  it("rejects a bad duration", () => {
    assert.strictEqual(
      rejected("timeout: 3 parsecs"),
      `proxy.yaml: at timeout: expected a duration between 1ms and 24 days, such as 3s, 500ms, 1m30s or "3 seconds", got "3 parsecs"`
    )
    assert.strictEqual(
      rejected("grace: 5"),
      `proxy.yaml: at grace: expected a duration between 1ms and 24 days, such as 3s, 500ms, 1m30s or "3 seconds", got 5`
    )
  })

  it("rejects an unknown balancer", () => {
    assert.strictEqual(
      rejected("lb: fastest"),
      `proxy.yaml: at lb: expected one of random, p2c, round-robin, least-conn, hash, got "fastest"`
    )
  })

  it("rejects a weight of 0 or 1.5", () => {
    assert.strictEqual(
      rejected("backends: [10.0.0.1:8000, { address: 10.0.0.2:8000, weight: 0 }]"),
      "proxy.yaml: at backends[1].weight: expected a positive integer, got 0"
    )
    assert.strictEqual(
      rejected("backends: [{ address: 10.0.0.2:8000, weight: 1.5 }]"),
      "proxy.yaml: at backends[0].weight: expected a positive integer, got 1.5"
    )
  })

  it("rejects negative retries and thresholds below 1", () => {
    assert.strictEqual(rejected("retries: -1"), "proxy.yaml: at retries: expected a non-negative integer, got -1")
    assert.strictEqual(
      rejected("unhealthy-threshold: 0"),
      "proxy.yaml: at unhealthy-threshold: expected a positive integer, got 0"
    )
    assert.strictEqual(
      rejected("max-connections: \"100\""),
      `proxy.yaml: at max-connections: expected a positive integer, got "100"`
    )
  })

  it("rejects a bad address", () => {
    assert.strictEqual(rejected("backends: [10.0.0.1]"), `proxy.yaml: at backends[0]: missing port in "10.0.0.1" (expected HOST:PORT)`)
    assert.strictEqual(
      rejected("backends: [{ address: \"10.0.0.1:http\" }]"),
      `proxy.yaml: at backends[0].address: invalid port in "10.0.0.1:http"`
    )
    assert.strictEqual(rejected("laddr: \":99999\""), `proxy.yaml: at laddr: port out of range in ":99999"`)
    assert.strictEqual(
      rejected("backends: [8000]"),
      "proxy.yaml: at backends[0]: expected HOST:PORT or { address: HOST:PORT, weight: N, backup: BOOL }, got 8000"
    )
  })

  it("rejects tls-cert without tls-key, at the top level and in a route", () => {
    assert.strictEqual(rejected("tls-cert: proxy.pem"), "proxy.yaml: tls-cert is given without tls-key (both are needed)")
    assert.strictEqual(
      rejected("routes:\n  - sni: [a.example.com]\n    mode: terminate\n    tls-key: a.key\n    backends: [10.0.0.1:80]"),
      "proxy.yaml: at routes[0]: tls-key is given without tls-cert (both are needed)"
    )
  })

  it("rejects a YAML syntax error with its line and column", () => {
    assert.strictEqual(
      rejected("lb: p2c\nbackends: [10.0.0.1:8000\ntimeout: 3s\n"),
      "proxy.yaml: line 3, column 1: flow sequence in block collection must be sufficiently indented and end with a ]"
    )
    assert.strictEqual(rejected("lb: p2c\nlb: hash\n"), "proxy.yaml: line 2, column 1: map keys must be unique")
  })

  it("rejects a JSON syntax error with its line and column", () => {
    assert.strictEqual(
      rejected("{\n  \"lb\": \"p2c\"\n  \"retries\": 2\n}", "proxy.json"),
      "proxy.json: line 3, column 3: expected ',' or '}' after property value"
    )
  })

  it("rejects a top-level list instead of a map", () => {
    assert.strictEqual(rejected("- 10.0.0.1:8000\n- 10.0.0.2:8000"), "proxy.yaml: expected a map of settings, got a list")
    assert.strictEqual(rejected("[]", "proxy.json"), "proxy.json: expected a map of settings, got an empty list")
  })

  it("rejects a route with an empty sni list, a bad server name or no backends", () => {
    assert.strictEqual(
      rejected("routes:\n  - sni: []\n    mode: passthrough\n    backends: [10.0.0.1:443]"),
      "proxy.yaml: at routes[0].sni: expected a non-empty list of server names, got an empty list"
    )
    assert.strictEqual(
      rejected("routes:\n  - sni: [\"*.*.example.com\"]\n    mode: passthrough\n    backends: [10.0.0.1:443]"),
      `proxy.yaml: at routes[0].sni[0]: expected a server name such as api.example.com or *.example.com, got "*.*.example.com"`
    )
    assert.strictEqual(
      rejected("routes:\n  - sni: [a.example.com]\n    mode: passthrough\n    backends: []"),
      "proxy.yaml: at routes[0].backends: expected a non-empty list of backends, got an empty list"
    )
    assert.strictEqual(
      rejected("routes:\n  - sni: [a.example.com]\n    backends: [10.0.0.1:443]"),
      `proxy.yaml: at routes[0]: missing key "mode"`
    )
    assert.strictEqual(
      rejected("routes:\n  - sni: [a.example.com]\n    mode: mirror\n    backends: [10.0.0.1:443]"),
      `proxy.yaml: at routes[0].mode: expected one of passthrough, terminate, got "mirror"`
    )
  })
})

describe("ConfigFile.load", () => {
  it.effect("reads and parses a file, resolving its relative paths against its directory", () => {
    const directory = mkdtempSync(join(tmpdir(), "config-file-"))
    const file = join(directory, "proxy.yaml")
    writeFileSync(file, "lb: hash\ntls-cert: proxy.pem\ntls-key: proxy.key\nbackends: [10.0.0.1:8000]\n")
    return Effect.gen(function*() {
      const config = yield* ConfigSource.load(file)
      assert.strictEqual(config.balancer, "hash")
      assert.deepStrictEqual(config.backends, [backend("10.0.0.1:8000")])
      assert.deepStrictEqual(
        config.tls,
        Option.some({ cert: join(directory, "proxy.pem"), key: join(directory, "proxy.key") })
      )
    }).pipe(Effect.ensuring(Effect.sync(() => rmSync(directory, { recursive: true, force: true }))))
  })

  it.effect("fails with one line for a missing file", () =>
    Effect.gen(function*() {
      const file = join(tmpdir(), "config-file-missing", "proxy.json")
      const error = yield* Effect.flip(ConfigSource.load(file))
      assert.strictEqual(error._tag, "ConfigFileError")
      assert.strictEqual(error.message, `${file}: cannot read: no such file`)
    }))

  it.effect("fails with the parse error of a bad file", () => {
    const directory = mkdtempSync(join(tmpdir(), "config-file-"))
    const file = join(directory, "proxy.json")
    writeFileSync(file, JSON.stringify({ retries: -2 }))
    return Effect.gen(function*() {
      const error = yield* Effect.flip(ConfigSource.load(file))
      assert.strictEqual(error.message, `${file}: at retries: expected a non-negative integer, got -2`)
    }).pipe(Effect.ensuring(Effect.sync(() => rmSync(directory, { recursive: true, force: true }))))
  })
})

describe("ConfigFile.apply", () => {
  const base = Config.make({ backends: [backend("10.0.0.1:8000")] })

  it("keeps the base when the file gives nothing", () => {
    assert.deepStrictEqual(ConfigFile.apply(base, {}), base)
  })

  it("overrides only what the file gives, the health settings field by field", () => {
    const config = ConfigFile.apply(base, parsed("lb: hash\nhealthy-threshold: 5\nidle-timeout: 1m"))
    assert.deepStrictEqual(config, {
      ...base,
      balancer: "hash",
      idleTimeout: Option.some(Duration.minutes(1)),
      health: { ...base.health, healthyThreshold: 5 }
    })
  })

  it("replaces the base's backends with the file's", () => {
    const config = ConfigFile.apply(base, parsed("backends: [10.0.0.2:8000, { address: 10.0.0.3:8000, weight: 2 }]"))
    assert.deepStrictEqual(config.backends, [backend("10.0.0.2:8000"), backend("10.0.0.3:8000", 2)])
  })
})

describe("ConfigFile.parse, hostile files", () => {
  it("refuses an alias-expansion bomb with one line", () => {
    const levels = ["a: &a [x, x, x, x, x, x, x, x, x, x]"]
    for (let i = 1; i < 9; i++) {
      levels.push(`${String.fromCharCode(97 + i)}: &${String.fromCharCode(97 + i)} [${Array(10).fill(`*${String.fromCharCode(96 + i)}`).join(", ")}]`)
    }
    const message = rejected(`${levels.join("\n")}\nbackends: ["127.0.0.1:80"]\n`)
    assert.match(message, /^proxy\.yaml: too many aliases/)
    assert.notInclude(message, "\n")
  })

  it("refuses a key given twice, in YAML and in JSON", () => {
    assert.match(rejected("timeout: 3s\ntimeout: 4s\n"), /^proxy\.yaml: line 2, column 1: map keys must be unique/)
    assert.strictEqual(
      rejected(`{\n  "timeout": "3s",\n  "timeout": "4s"\n}`, "proxy.json"),
      `proxy.json: line 3, column 3: duplicate key "timeout"`
    )
    assert.match(rejected(`{"backends": [{"address": "127.0.0.1:80", "address": "127.0.0.1:81"}]}`, "proxy.json"), /duplicate key "address"/)
    // The same key in different objects is fine, and so is a value equal to a key.
    const fine = parsed(`{"routes": [], "backends": [{"address": "127.0.0.1:80"}, {"address": "127.0.0.1:81"}], "log-format": "text", "lb": "hash"}`, "proxy.json")
    assert.strictEqual(fine.backends?.length, 2)
  })

  it("refuses a file over 10 MiB without parsing it", () => {
    const huge = `backends: ["127.0.0.1:80"]\n# ${"x".repeat(ConfigFile.maxBytes)}\n`
    assert.strictEqual(rejected(huge), "proxy.yaml: larger than 10 MiB")
  })

  it("shows at most 80 characters of a value, escaped, on one line", () => {
    const long = "a".repeat(50_000)
    const message = rejected(`timeout: "${long}"`)
    assert.isBelow(message.length, 300)
    assert.include(message, `"${"a".repeat(80)}"... (50000 characters)`)
    const controls = rejected(`timeout: "3\\u0007\\u001b[31m"\nbackends: ["127.0.0.1:80"]`)
    assert.notMatch(controls, /[\u0000-\u001f]/)
    assert.include(controls, "\\u0007")
    const badKey = rejected(`"bad\\u0000key": 1`)
    assert.notMatch(badKey, /[\u0000-\u001f]/)
  })

  it("refuses durations outside their range, naming it", () => {
    assert.match(rejected("timeout: 999h"), /at timeout: expected a duration between 1ms and 24 days/)
    assert.match(rejected("health-interval: 0s"), /at health-interval: expected a duration between 100ms and 24 days/)
    assert.match(rejected("dns-refresh: 10ms"), /at dns-refresh: expected a duration between 100ms and 24 days/)
    assert.match(rejected(`idle-timeout: ${"9".repeat(400)}s`), /at idle-timeout: expected a duration between 1ms and 24 days/)
  })
})

describe("ConfigSource.read", () => {
  it.effect("refuses a file over 10 MiB without reading it to its end", () =>
    Effect.gen(function*() {
      const dir = mkdtempSync(join(tmpdir(), "tcp-proxy-config-"))
      const file = join(dir, "big.yaml")
      writeFileSync(file, "x".repeat(ConfigFile.maxBytes + 1))
      const result = yield* Effect.result(ConfigSource.read(file))
      rmSync(dir, { recursive: true })
      assert.isTrue(Result.isFailure(result) && result.failure.message === `${file}: larger than 10 MiB`)
    }))
})
