/**
 * PROXY protocol headers (HAProxy's spec, versions 1 and 2), which tell a
 * backend the real client address: the client's address and port as source,
 * the address and port it connected to as destination.
 *
 * @since 0.1.0
 */
import { isIP } from "node:net"
import { unmapIPv4 } from "./Address.ts"

/** The modes `--proxy-protocol` accepts. */
export const modes = ["off", "v1", "v2"] as const
export type Mode = typeof modes[number]

/** The two ends of a client connection, as the proxy saw them. */
export interface Endpoints {
  readonly sourceAddress: string
  readonly sourcePort: number
  readonly destinationAddress: string
  readonly destinationPort: number
}

/** The version 2 signature, the first 12 bytes of every v2 header. */
export const v2Signature = Buffer.from([0x0d, 0x0a, 0x0d, 0x0a, 0x00, 0x0d, 0x0a, 0x51, 0x55, 0x49, 0x54, 0x0a])

/** Both addresses with IPv4-mapped ones unmapped, and their common family (4, 6, or 0 when they differ). */
const normalise = (endpoints: Endpoints) => {
  const source = unmapIPv4(endpoints.sourceAddress)
  const destination = unmapIPv4(endpoints.destinationAddress)
  const family = isIP(source)
  return { source, destination, family: family !== 0 && family === isIP(destination) ? family : 0 }
}

/** A version 1 (text) header, e.g. `PROXY TCP4 192.0.2.1 198.51.100.1 56324 443\r\n`. */
export const v1 = (endpoints: Endpoints): Buffer => {
  const { destination, family, source } = normalise(endpoints)
  return Buffer.from(
    family === 0
      ? "PROXY UNKNOWN\r\n"
      : `PROXY TCP${family} ${source} ${destination} ${endpoints.sourcePort} ${endpoints.destinationPort}\r\n`,
    "latin1"
  )
}

/** The 16 bytes of an IPv6 address. */
const ipv6Bytes = (address: string): Buffer => {
  const [head = "", tail = ""] = address.split("::")
  const groups = (part: string): Array<string> => (part === "" ? [] : part.split(":"))
  let left = groups(head)
  let right = address.includes("::") ? groups(tail) : []
  // An embedded IPv4 address (::ffff:1.2.3.4 style) takes the last two groups.
  const expand = (parts: Array<string>) =>
    parts.flatMap((part) => {
      if (!part.includes(".")) return [part]
      const [a = 0, b = 0, c = 0, d = 0] = part.split(".").map(Number)
      return [((a << 8) | b).toString(16), ((c << 8) | d).toString(16)]
    })
  left = expand(left)
  right = expand(right)
  const all = [...left, ...Array<string>(8 - left.length - right.length).fill("0"), ...right]
  const bytes = Buffer.alloc(16)
  all.forEach((group, i) => bytes.writeUInt16BE(parseInt(group, 16), i * 2))
  return bytes
}

const ipv4Bytes = (address: string): Buffer => Buffer.from(address.split(".").map(Number))

/** A version 2 (binary) header: the PROXY command over TCP; family UNSPEC with no addresses when the two families differ. */
export const v2 = (endpoints: Endpoints): Buffer => {
  const { destination, family, source } = normalise(endpoints)
  const addresses = family === 4
    ? Buffer.concat([ipv4Bytes(source), ipv4Bytes(destination)])
    : family === 6
    ? Buffer.concat([ipv6Bytes(source), ipv6Bytes(destination)])
    : Buffer.alloc(0)
  const ports = Buffer.alloc(family === 0 ? 0 : 4)
  if (family !== 0) {
    ports.writeUInt16BE(endpoints.sourcePort, 0)
    ports.writeUInt16BE(endpoints.destinationPort, 2)
  }
  const head = Buffer.alloc(4)
  head[0] = 0x21 // version 2, command PROXY
  head[1] = family === 4 ? 0x11 : family === 6 ? 0x21 : 0x00 // TCP over IPv4 / IPv6, or UNSPEC
  head.writeUInt16BE(addresses.length + ports.length, 2)
  return Buffer.concat([v2Signature, head, addresses, ports])
}

/** The header of a version. */
export const header = (version: "v1" | "v2", endpoints: Endpoints): Buffer =>
  version === "v1" ? v1(endpoints) : v2(endpoints)

/**
 * The header of a connection that carries no client (a health check): `PROXY
 * UNKNOWN` in v1, the LOCAL command in v2, so that a backend that requires the
 * protocol accepts it quietly.
 */
export const localHeader = (version: "v1" | "v2"): Buffer =>
  version === "v1"
    ? Buffer.from("PROXY UNKNOWN\r\n", "latin1")
    : Buffer.concat([v2Signature, Buffer.from([0x20, 0x00, 0x00, 0x00])])
