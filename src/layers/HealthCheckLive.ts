/**
 * The active TCP health check: a backend is up when it accepts a connection
 * within `--health-timeout`. The connection is closed at once and carries no
 * byte (no PROXY header either).
 *
 * @since 0.1.0
 */
import * as Effect from "effect/Effect"
import * as Layer from "effect/Layer"
import { Dialer } from "../services/Dialer.ts"
import { HealthCheck, HealthCheckError } from "../services/HealthCheck.ts"
import { Settings } from "../services/Settings.ts"

/** TCP connect checks, with the timeout the settings give at the time of each check. */
export const layer: Layer.Layer<HealthCheck, never, Dialer | Settings> = Layer.effect(
  HealthCheck,
  Effect.gen(function*() {
    const dialer = yield* Dialer
    const settings = yield* Settings
    return HealthCheck.of({
      check: (backend) =>
        Effect.flatMap(settings.current, ({ health }) => dialer.dial(backend, health.timeout)).pipe(
          Effect.map((socket) => socket.destroy()),
          Effect.mapError((cause) => new HealthCheckError({ backend: backend.address, cause }))
        )
    })
  })
)
