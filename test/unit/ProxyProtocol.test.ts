import { assert, describe, it } from "@effect/vitest"
import * as ProxyProtocol from "../../src/domain/ProxyProtocol.ts"

const v4 = { sourceAddress: "192.0.2.1", sourcePort: 56324, destinationAddress: "198.51.100.1", destinationPort: 443 }
const v6 = { sourceAddress: "2001:db8::1", sourcePort: 4242, destinationAddress: "::1", destinationPort: 8080 }

describe("PROXY protocol v1", () => {
  it("writes TCP4 and TCP6 lines", () => {
    assert.strictEqual(ProxyProtocol.v1(v4).toString(), "PROXY TCP4 192.0.2.1 198.51.100.1 56324 443\r\n")
    assert.strictEqual(ProxyProtocol.v1(v6).toString(), "PROXY TCP6 2001:db8::1 ::1 4242 8080\r\n")
  })

  it("shows IPv4-mapped addresses as IPv4", () => {
    const mapped = { ...v4, sourceAddress: "::ffff:192.0.2.1", destinationAddress: "::ffff:198.51.100.1" }
    assert.strictEqual(ProxyProtocol.v1(mapped).toString(), "PROXY TCP4 192.0.2.1 198.51.100.1 56324 443\r\n")
  })

  it("says UNKNOWN when the families differ", () => {
    assert.strictEqual(ProxyProtocol.v1({ ...v4, destinationAddress: "::1" }).toString(), "PROXY UNKNOWN\r\n")
  })
})

describe("PROXY protocol v2", () => {
  it("writes the signature, PROXY over TCP4, the addresses and the ports", () => {
    const header = ProxyProtocol.v2(v4)
    assert.deepStrictEqual(header.subarray(0, 12), ProxyProtocol.v2Signature)
    assert.strictEqual(header[12], 0x21)
    assert.strictEqual(header[13], 0x11)
    assert.strictEqual(header.readUInt16BE(14), 12)
    assert.deepStrictEqual([...header.subarray(16, 24)], [192, 0, 2, 1, 198, 51, 100, 1])
    assert.strictEqual(header.readUInt16BE(24), 56324)
    assert.strictEqual(header.readUInt16BE(26), 443)
    assert.strictEqual(header.length, 28)
  })

  it("writes TCP6 with 16-byte addresses, expanding ::", () => {
    const header = ProxyProtocol.v2(v6)
    assert.strictEqual(header[13], 0x21)
    assert.strictEqual(header.readUInt16BE(14), 36)
    assert.strictEqual(header.subarray(16, 32).toString("hex"), "20010db8000000000000000000000001")
    assert.strictEqual(header.subarray(32, 48).toString("hex"), "00000000000000000000000000000001")
    assert.strictEqual(header.readUInt16BE(48), 4242)
    assert.strictEqual(header.readUInt16BE(50), 8080)
    assert.strictEqual(header.length, 52)
  })

  it("encodes full and embedded-IPv4 IPv6 forms", () => {
    const header = ProxyProtocol.v2({
      ...v6,
      sourceAddress: "fe80:1:2:3:4:5:6:7",
      destinationAddress: "64:ff9b::192.0.2.33"
    })
    assert.strictEqual(header.subarray(16, 32).toString("hex"), "fe800001000200030004000500060007")
    assert.strictEqual(header.subarray(32, 48).toString("hex"), "0064ff9b0000000000000000c0000221")
  })

  it("treats IPv4-mapped addresses as IPv4, and differing families as UNSPEC", () => {
    assert.strictEqual(ProxyProtocol.v2({ ...v4, sourceAddress: "::ffff:192.0.2.1" })[13], 0x11)
    const unspec = ProxyProtocol.v2({ ...v4, destinationAddress: "::1" })
    assert.strictEqual(unspec[13], 0x00)
    assert.strictEqual(unspec.readUInt16BE(14), 0)
    assert.strictEqual(unspec.length, 16)
  })

  it("header picks the version", () => {
    assert.deepStrictEqual(ProxyProtocol.header("v1", v4), ProxyProtocol.v1(v4))
    assert.deepStrictEqual(ProxyProtocol.header("v2", v4), ProxyProtocol.v2(v4))
  })
})
