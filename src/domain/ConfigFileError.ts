/**
 * The error of a config file that cannot be read or used, apart from the
 * parser (which loads Schema and YAML) so that what only reports it stays
 * light.
 *
 * @since 0.1.0
 */
import * as Data from "effect/Data"

/** A config file that cannot be read or used: `path` is where in it (`backends[1].weight`), empty for the whole file. */
export class ConfigFileError extends Data.TaggedError("ConfigFileError")<{
  readonly file: string
  readonly path: string
  readonly reason: string
}> {
  override get message(): string {
    return `${this.file}: ${this.path === "" ? "" : `at ${this.path}: `}${this.reason}`
  }
}
