/**
 * Pushes the metric registry (the same series `/metrics` renders) to an
 * OpenTelemetry collector over OTLP/HTTP with JSON bodies, every
 * `--otlp-interval`, through Effect's own `OtlpMetrics` exporter, as the
 * resource `service.name=tcp-proxy`, `service.version` the package's. The
 * exporter runs on its own fibers and only reads the registry: a collector
 * that fails or hangs never touches a connection. A failed push is logged at
 * warn level at most once a minute. The proxy loads this module only when
 * `--otlp-endpoint` is given.
 *
 * @since 0.1.0
 */
import { readFileSync } from "node:fs"
import * as Clock from "effect/Clock"
import * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
import * as Layer from "effect/Layer"
import * as Option from "effect/Option"
import * as Schema from "effect/Schema"
import * as FetchHttpClient from "effect/http/FetchHttpClient"
import * as HttpClient from "effect/http/HttpClient"
import * as HttpClientError from "effect/http/HttpClientError"
import * as OtlpExporter from "effect/observability/OtlpExporter"
import * as OtlpMetrics from "effect/observability/OtlpMetrics"
import * as OtlpSerialization from "effect/observability/OtlpSerialization"

/** The `service.name` resource attribute. */
export const serviceName = "tcp-proxy"

/** How often a failing collector is logged, at most. */
export const warnEvery = Duration.minutes(1)

/** Where and how often to push. */
export interface Options {
  /** The collector's metrics URL, e.g. `http://127.0.0.1:4318/v1/metrics`. */
  readonly url: string
  readonly interval: Duration.Duration
}

/** The package's version (`service.version`), read from its package.json. */
const packageVersion = Effect.try(() =>
  Schema.decodeUnknownSync(Schema.Struct({ version: Schema.String }))(
    JSON.parse(readFileSync(new URL("../../package.json", import.meta.url), "utf8"))
  ).version
)

/** Why a push failed, with what fetch says under a transport error (`ECONNREFUSED`, `bad port`...). */
const reasonOf = (error: HttpClientError.HttpClientError): string => {
  const cause = error.reason._tag === "TransportError" ? error.reason.cause : undefined
  const inner = cause instanceof Error ? cause.cause : undefined
  if (!(inner instanceof Error)) return error.message
  return `${error.message}: ${"code" in inner ? String(inner.code) : inner.message}`
}

/**
 * The HTTP client the exporter posts with: fetch, a request that takes
 * longer than the interval counts as failed (so a hung collector cannot
 * stall later pushes), and failures are logged at most once per
 * {@link warnEvery}.
 */
const client = (options: Options) =>
  Layer.effect(
    HttpClient.HttpClient,
    Effect.gen(function*() {
      const base = yield* HttpClient.HttpClient
      let warnedAt: number | undefined
      const warn = (error: HttpClientError.HttpClientError) =>
        Effect.gen(function*() {
          const now = yield* Clock.currentTimeMillis
          if (warnedAt !== undefined && now - warnedAt < Duration.toMillis(warnEvery)) return
          warnedAt = now
          yield* Effect.logWarning("otlp export failed").pipe(
            Effect.annotateLogs({ endpoint: options.url, reason: reasonOf(error) })
          )
        })
      return base.pipe(
        HttpClient.filterStatusOk,
        HttpClient.transform((response, request) =>
          Effect.timeoutOrElse(response, {
            duration: options.interval,
            orElse: () =>
              Effect.fail(
                new HttpClientError.HttpClientError({
                  reason: new HttpClientError.TransportError({ request, description: "no answer within the interval" })
                })
              )
          })
        ),
        HttpClient.tapError(warn)
      )
    })
  ).pipe(Layer.provide(FetchHttpClient.layer))

/** Pushes every metric in the registry to `options.url` every `options.interval`, for as long as the layer's scope is open. */
export const layer = (options: Options): Layer.Layer<never> =>
  Layer.unwrap(Effect.gen(function*() {
    const version = yield* Effect.option(packageVersion)
    const exporter = OtlpMetrics.make({
      url: options.url,
      exportInterval: options.interval,
      // A last push as the proxy stops, bounded so that a dead collector does not hold the exit up.
      shutdownTimeout: Duration.min(options.interval, Duration.seconds(2)),
      resource: {
        serviceName,
        ...(Option.isSome(version) ? { serviceVersion: version.value } : {})
      }
    })
    return Layer.effectDiscard(exporter).pipe(
      Layer.provide(Layer.mergeAll(OtlpExporter.layerFlusher, OtlpSerialization.layerJson, client(options)))
    )
  }))
