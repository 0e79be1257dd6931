/**
 * The strategies `--lb` names.
 *
 * @since 0.1.0
 */
import type { BalancerName } from "../Config.ts"
import { consistentHash } from "./ConsistentHash.ts"
import { leastConn } from "./LeastConn.ts"
import { p2c, random } from "./Random.ts"
import { roundRobin } from "./RoundRobin.ts"
import type { BackendView, Strategy } from "./Strategy.ts"

/** A fresh strategy of the given name (each keeps its own state: round robin's scores, the hash ring). */
export const make = <V extends BackendView>(name: BalancerName): Strategy<V> => {
  switch (name) {
    case "random":
      return random()
    case "p2c":
      return p2c()
    case "round-robin":
      return roundRobin()
    case "least-conn":
      return leastConn()
    case "hash":
      return consistentHash()
  }
}
