/**
 * The error of a config file that cannot be read or used, and the size a
 * file may have, apart from the parser (which loads Schema and YAML) so that
 * what only reads or reports stays light.
 *
 * @since 0.1.0
 */
import * as Data from "effect/Data"
import { escapeControls } from "./Text.ts"

/** A config file that cannot be read or used: `path` is where in it (`backends[1].weight`), empty for the whole file. */
export class ConfigFileError extends Data.TaggedError("ConfigFileError")<{
  readonly file: string
  readonly path: string
  readonly reason: string
}> {
  override get message(): string {
    return escapeControls(`${this.file}: ${this.path === "" ? "" : `at ${this.path}: `}${this.reason}`)
  }
}

/** The largest config file the proxy reads: a bigger one is refused rather than parsed. */
export const maxBytes = 10 * 1024 * 1024
