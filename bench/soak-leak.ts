/**
 * Checks the soak's memory check: preloaded into the proxy by
 * `node bench/soak.ts --leak BYTES` (never otherwise), it keeps about BYTES
 * bytes of JavaScript heap alive for every connection any `net.Server` of
 * the process accepts, forever: the leak the heap-slope bound must catch.
 */
import * as Net from "node:net"

const bytes = Number(process.env["SOAK_LEAK_BYTES"])
if (bytes > 0) {
  const kept: Array<Array<number>> = []
  const prototype = Net.Server.prototype as unknown as { emit: (event: string | symbol, ...args: Array<unknown>) => boolean }
  const emit = prototype.emit
  prototype.emit = function(this: unknown, event: string | symbol, ...args: Array<unknown>): boolean {
    // An array of n small integers: about 8 n bytes on the heap (plus a small header).
    if (event === "connection") kept.push(new Array<number>(Math.ceil(bytes / 8)).fill(0))
    return emit.call(this, event, ...args)
  }
}
