/**
 * `hash`: consistent hashing of the client IP on a ring of virtual nodes.
 * Each member owns points of the ring in proportion to its configured weight
 * (1000 per unit of weight, scaled down to at most {@link maxPoints} in all);
 * a client hashes to a point and takes the first eligible backend clockwise
 * from it, then the next distinct ones for retries. The ring holds every
 * member, eligible or not, so a backend that turns UNHEALTHY moves only its
 * own clients (to the next backend on the ring) and gets them back when it
 * returns. Slow start does not move anyone: the ring uses configured weights.
 *
 * @since 0.1.0
 */
import type { BackendView, Strategy } from "./Strategy.ts"

/** Points per unit of weight: enough for each backend's share to land within a few percent of its weight. */
export const pointsPerWeight = 1000

/** The most points a ring holds, whatever the weights: it bounds the time and memory of a rebuild. */
export const maxPoints = 200_000

/** 32-bit FNV-1a followed by the murmur3 finaliser, for a well-spread hash of short strings. */
export const hash32 = (text: string): number => {
  let h = 0x811c9dc5
  for (let i = 0; i < text.length; i++) {
    h ^= text.charCodeAt(i)
    h = Math.imul(h, 0x01000193)
  }
  h ^= h >>> 16
  h = Math.imul(h, 0x85ebca6b)
  h ^= h >>> 13
  h = Math.imul(h, 0xc2b2ae35)
  h ^= h >>> 16
  return h >>> 0
}

/** A ring: sorted points and, for each point, the index of its backend in `backends`. */
export interface Ring<V extends BackendView> {
  readonly backends: ReadonlyArray<V>
  readonly points: Uint32Array
  readonly owners: Uint32Array
}

/** Builds the ring of `backends`. */
export const makeRing = <V extends BackendView>(backends: ReadonlyArray<V>): Ring<V> => {
  const entries: Array<readonly [point: number, owner: number]> = []
  const totalWeight = backends.reduce((sum, view) => sum + view.backend.weight, 0)
  const scale = Math.min(pointsPerWeight, maxPoints / Math.max(totalWeight, 1))
  backends.forEach((view, owner) => {
    const count = Math.max(1, Math.round(view.backend.weight * scale))
    for (let i = 0; i < count; i++) entries.push([hash32(`${view.backend.address}#${i}`), owner])
  })
  entries.sort((a, b) => a[0] - b[0] || a[1] - b[1])
  return {
    backends,
    points: Uint32Array.from(entries, ([point]) => point),
    owners: Uint32Array.from(entries, ([, owner]) => owner)
  }
}

/** The index of the first point at or after `point`, wrapping to 0. */
const firstAtOrAfter = (points: Uint32Array, point: number): number => {
  let low = 0
  let high = points.length
  while (low < high) {
    const mid = (low + high) >>> 1
    if (points[mid]! < point) low = mid + 1
    else high = mid
  }
  return low === points.length ? 0 : low
}

/** The distinct eligible backends clockwise from `key`'s point, first owner first. */
export const lookup = <V extends BackendView>(ring: Ring<V>, key: string): Array<V> => {
  const found: Array<V> = []
  const { backends, owners, points } = ring
  if (points.length === 0) return found
  const seen = new Uint8Array(backends.length)
  let distinct = 0
  const start = firstAtOrAfter(points, hash32(key))
  for (let step = 0; step < points.length && distinct < backends.length; step++) {
    const owner = owners[(start + step) % points.length]!
    if (seen[owner] === 1) continue
    seen[owner] = 1
    distinct++
    const view = backends[owner]!
    if (view.eligible) found.push(view)
  }
  return found
}

/** A fresh `hash` strategy; it rebuilds its ring when the pool's generation changes. */
export const consistentHash = <V extends BackendView>(): Strategy<V> => {
  let ring: Ring<V> | undefined
  let generation = -1
  return {
    order: (_eligible, { client, generation: current, members }) => {
      if (ring === undefined || generation !== current) {
        ring = makeRing(members)
        generation = current
      }
      return lookup(ring, client.ip)
    }
  }
}
