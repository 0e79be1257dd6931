/**
 * Resolves names with the system resolver (`dns.lookup`, as every other
 * program on the host would: /etc/hosts, search domains, cluster DNS).
 *
 * @since 0.1.0
 */
import { lookup } from "node:dns/promises"
import * as Effect from "effect/Effect"
import * as Layer from "effect/Layer"
import { ResolveError, Resolver } from "../services/Resolver.ts"

/** The system resolver. */
export const layer: Layer.Layer<Resolver> = Layer.succeed(Resolver)({
  resolve: (host) =>
    Effect.tryPromise({
      try: () => lookup(host, { all: true }),
      catch: (cause) => new ResolveError({ host, cause })
    }).pipe(Effect.map((answers) => [...new Set(answers.map((answer) => answer.address))]))
})
