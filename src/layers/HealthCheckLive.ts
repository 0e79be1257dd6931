/**
 * The active TCP health check: a backend is up when it accepts a connection
 * within `--health-timeout`. The connection is closed at once and carries no
 * byte (no PROXY header either).
 *
 * @since 0.1.0
 */
import { type Duration, Effect, Layer } from "effect"
import { Dialer } from "../services/Dialer.ts"
import { HealthCheck, HealthCheckError } from "../services/HealthCheck.ts"

/** TCP connect checks with the given timeout. */
export const layer = (timeout: Duration.Duration): Layer.Layer<HealthCheck, never, Dialer> =>
  Layer.effect(
    HealthCheck,
    Effect.gen(function*() {
      const dialer = yield* Dialer
      return HealthCheck.of({
        check: (backend) =>
          dialer.dial(backend, timeout).pipe(
            Effect.map((socket) => socket.destroy()),
            Effect.mapError((cause) => new HealthCheckError({ backend: backend.address, cause }))
          )
      })
    })
  )
