/**
 * Socket addresses as the command line and the config file spell them:
 * `HOST:PORT`, `:PORT` (all interfaces) and `[IPV6]:PORT`.
 *
 * @since 0.1.0
 */
import { isIP } from "node:net"
import * as Result from "effect/Result"
import { quote } from "./Text.ts"

/** A host and a port. */
export interface HostPort {
  /** Host name or IP address. */
  readonly host: string
  readonly port: number
}

const portOf = (text: string, input: string, lowest = 1): Result.Result<number, string> => {
  if (!/^\d{1,5}$/.test(text)) return Result.fail(`invalid port in ${quote(input)}`)
  const port = Number(text)
  return port >= lowest && port <= 65535 ? Result.succeed(port) : Result.fail(`port out of range in ${quote(input)}`)
}

const hostName = /^(?=.{1,253}$)[A-Za-z0-9_]([A-Za-z0-9_-]{0,62})(\.[A-Za-z0-9_]([A-Za-z0-9_-]{0,62}))*\.?$/

/** A listen address: `host` is `undefined` for `:PORT` (every interface). */
export interface ListenAddress {
  readonly host: string | undefined
  readonly port: number
}

/** Parses `HOST:PORT` or `[IPV6]:PORT`; fails with a short reason that names the input. */
export const parse = (input: string, lowestPort = 1): Result.Result<HostPort, string> => {
  const bracketed = /^\[([^\]]+)\]:([^:]*)$/.exec(input)
  if (bracketed !== null) {
    const host = bracketed[1]!
    if (isIP(host) !== 6) return Result.fail(`invalid IPv6 address in ${quote(input)}`)
    return Result.map(portOf(bracketed[2]!, input, lowestPort), (port) => ({ host, port }))
  }
  const colon = input.lastIndexOf(":")
  if (colon === -1) return Result.fail(`missing port in ${quote(input)} (expected HOST:PORT)`)
  const host = input.slice(0, colon)
  if (host === "") return Result.fail(`missing host in ${quote(input)} (expected HOST:PORT)`)
  if (host.includes(":")) return Result.fail(`IPv6 address must be in brackets in ${quote(input)} (expected [ADDR]:PORT)`)
  if (isIP(host) === 0 && (!hostName.test(host) || /^[\d.]+$/.test(host))) {
    return Result.fail(`invalid host in ${quote(input)}`)
  }
  return Result.map(portOf(input.slice(colon + 1), input, lowestPort), (port) => ({ host, port }))
}

/** Parses a listen address: `HOST:PORT`, `[IPV6]:PORT` or `:PORT`; port 0 picks a free port. */
export const parseListen = (input: string): Result.Result<ListenAddress, string> =>
  input.startsWith(":")
    ? Result.map(portOf(input.slice(1), input, 0), (port) => ({ host: undefined, port }))
    : parse(input, 0)

/**
 * Formats a host and port as `HOST:PORT`, bracketing IPv6 addresses (the
 * only hosts with a colon: it runs for every logged connection, so no
 * address parsing).
 */
export const format = (host: string | undefined, port: number): string =>
  host === undefined ? `:${port}` : host.includes(":") ? `[${host}]:${port}` : `${host}:${port}`

/**
 * Treats an IPv4-mapped IPv6 address (`::ffff:a.b.c.d`) as the IPv4 address,
 * as the proxy does everywhere (hashing, logs, PROXY headers).
 */
export const unmapIPv4 = (ip: string): string =>
  ip.length > 7 && ip.startsWith("::ffff:") && isIP(ip.slice(7)) === 4 ? ip.slice(7) : ip
