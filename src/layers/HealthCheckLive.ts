/**
 * The active TCP health check: a backend is up when it accepts a connection
 * within the health timeout. The connection is closed at once and carries no
 * byte.
 *
 * @since 0.1.0
 */
import * as Effect from "effect/Effect"
import * as Layer from "effect/Layer"
import { Dialer } from "../services/Dialer.ts"
import { HealthCheck, HealthCheckError } from "../services/HealthCheck.ts"

/** TCP connect checks over the dialer in context. */
export const layer: Layer.Layer<HealthCheck, never, Dialer> = Layer.effect(
  HealthCheck,
  Dialer.useSync((dialer) =>
    HealthCheck.of({
      check: (backend, options) =>
        dialer.dial(backend, options.timeoutMs).pipe(
          Effect.map((socket) => socket.destroy()),
          Effect.mapError((error) =>
            new HealthCheckError({ backend: backend.address, reason: error.message, local: error.reason === "local" })
          )
        )
    })
  )
)
