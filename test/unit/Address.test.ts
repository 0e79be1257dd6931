import { assert, describe, it } from "@effect/vitest"
import { Result } from "effect"
import * as Address from "../../src/domain/Address.ts"
import { ok, rejected } from "./checks.ts"

describe("Address.parse", () => {
  it("parses HOST:PORT with an IPv4 address or a host name", () => {
    assert.deepStrictEqual(ok(Address.parse("127.0.0.1:9001")), { host: "127.0.0.1", port: 9001 })
    assert.deepStrictEqual(ok(Address.parse("example.com:80")), { host: "example.com", port: 80 })
    assert.deepStrictEqual(ok(Address.parse("localhost:1")), { host: "localhost", port: 1 })
    assert.deepStrictEqual(ok(Address.parse("backend-1.internal:65535")), { host: "backend-1.internal", port: 65535 })
  })

  it("parses [IPV6]:PORT and strips the brackets", () => {
    assert.deepStrictEqual(ok(Address.parse("[::1]:8080")), { host: "::1", port: 8080 })
    assert.deepStrictEqual(ok(Address.parse("[2001:db8::1]:443")), { host: "2001:db8::1", port: 443 })
    assert.deepStrictEqual(ok(Address.parse("[::ffff:10.0.0.1]:22")), { host: "::ffff:10.0.0.1", port: 22 })
  })

  it("rejects ports that are missing, not numbers or out of range", () => {
    for (const input of ["127.0.0.1", "example.com", "[::1]"]) {
      assert.include(rejected(Address.parse(input)), input)
    }
    for (const input of ["127.0.0.1:", "127.0.0.1:http", "127.0.0.1:-1", "127.0.0.1:80a", "127.0.0.1: 80", "[::1]:x"]) {
      assert.include(rejected(Address.parse(input)), input, input)
    }
    for (const input of ["127.0.0.1:0", "127.0.0.1:65536", "127.0.0.1:99999", "127.0.0.1:123456", "[::1]:0", "[::1]:70000"]) {
      assert.include(rejected(Address.parse(input)), input, input)
    }
  })

  it("rejects a missing or malformed host", () => {
    assert.include(rejected(Address.parse(":80")), "missing host")
    for (const input of ["bad host:80", "a..b:80", "-leading.example:80", "exa$mple.com:80", "/tmp/sock:80", "999.1.1.1:80", "1.2.3:80"]) {
      assert.include(rejected(Address.parse(input)), input, input)
    }
  })

  it("rejects an IPv6 address without brackets", () => {
    for (const input of ["::1:80", "2001:db8::1:443", "fe80::1:22"]) {
      assert.include(rejected(Address.parse(input)), "brackets", input)
    }
  })

  it("rejects brackets around something that is not an IPv6 address", () => {
    for (const input of ["[127.0.0.1]:80", "[example.com]:80", "[zz::1]:80"]) {
      assert.include(rejected(Address.parse(input)), input, input)
    }
  })
})

describe("Address.parseListen", () => {
  it("parses :PORT as every interface", () => {
    assert.deepStrictEqual(ok(Address.parseListen(":4000")), { host: undefined, port: 4000 })
  })

  it("accepts port 0 (a free port), unlike backend addresses", () => {
    assert.deepStrictEqual(ok(Address.parseListen(":0")), { host: undefined, port: 0 })
    assert.deepStrictEqual(ok(Address.parseListen("127.0.0.1:0")), { host: "127.0.0.1", port: 0 })
    assert.deepStrictEqual(ok(Address.parseListen("[::1]:0")), { host: "::1", port: 0 })
    assert.isTrue(Result.isFailure(Address.parse("127.0.0.1:0")))
  })

  it("parses HOST:PORT and [IPV6]:PORT like parse", () => {
    assert.deepStrictEqual(ok(Address.parseListen("127.0.0.1:9100")), { host: "127.0.0.1", port: 9100 })
    assert.deepStrictEqual(ok(Address.parseListen("[::]:4000")), { host: "::", port: 4000 })
  })

  it("rejects bad listen addresses", () => {
    for (const input of [":", ":65536", ":-1", ":http", "4000", "::1:4000", "bad host:4000", ""]) {
      assert.isTrue(Result.isFailure(Address.parseListen(input)), JSON.stringify(input))
    }
  })
})

describe("Address.format", () => {
  it("brackets IPv6 hosts and leaves the rest alone", () => {
    assert.strictEqual(Address.format("127.0.0.1", 80), "127.0.0.1:80")
    assert.strictEqual(Address.format("example.com", 443), "example.com:443")
    assert.strictEqual(Address.format("::1", 8080), "[::1]:8080")
    assert.strictEqual(Address.format(undefined, 4000), ":4000")
  })

  it("round-trips through parse", () => {
    for (const input of ["127.0.0.1:9001", "[2001:db8::1]:443", "example.com:80"]) {
      const { host, port } = ok(Address.parse(input))
      assert.strictEqual(Address.format(host, port), input)
    }
  })
})

describe("Address.unmapIPv4", () => {
  it("turns an IPv4-mapped IPv6 address into the IPv4 address", () => {
    assert.strictEqual(Address.unmapIPv4("::ffff:10.0.0.1"), "10.0.0.1")
    assert.strictEqual(Address.unmapIPv4("::ffff:127.0.0.1"), "127.0.0.1")
  })

  it("leaves every other address unchanged", () => {
    for (const ip of ["10.0.0.1", "::1", "::", "2001:db8::1", "::ffff:", "::ffff:zz", "::ffff:1.2.3", "::ffff:abcd", "fe80::ffff:1.2.3.4"]) {
      assert.strictEqual(Address.unmapIPv4(ip), ip)
    }
  })
})
