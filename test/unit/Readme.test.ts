import { readFileSync } from "node:fs"
import { assert, describe, it } from "@effect/vitest"
import { Result } from "effect"
import * as ConfigFile from "../../src/domain/ConfigFile.ts"

const readme = readFileSync(new URL("../../README.md", import.meta.url), "utf8")

/** The first fenced block of `language` after `heading`. */
const blockAfter = (heading: string, language: string): string => {
  const section = readme.slice(readme.indexOf(heading))
  const match = new RegExp("```" + language + "\\n([\\s\\S]*?)```").exec(section)
  if (match === null) return assert.fail(`no ${language} block after ${heading}`)
  return match[1]!
}

describe("README", () => {
  it("the config file example is a valid config file with every key", () => {
    const text = blockAfter("## Config file", "yaml")
    const parsed = ConfigFile.parse(text, "README.yaml")
    assert.isTrue(Result.isSuccess(parsed), Result.isFailure(parsed) ? parsed.failure.message : "")
    for (
      const key of ["laddr", "lb", "timeout", "retries", "health-interval", "health-timeout", "healthy-threshold",
        "unhealthy-threshold", "grace", "max-connections", "idle-timeout", "metrics-addr", "proxy-protocol",
        "dns-refresh", "log-level", "log-format", "allow", "deny", "max-connections-per-ip", "connection-rate-per-ip",
        "accept-proxy", "tcp-keepalive", "slow-start", "close-on-unhealthy", "admin-token-file", "health-send",
        "health-expect", "health-http", "workers", "otlp-endpoint", "otlp-interval", "backends"]
    ) assert.match(text, new RegExp(`^${key}:`, "m"), key)
  })
})
