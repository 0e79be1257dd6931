/**
 * Text as messages show it: a value that came from outside (a flag, a config
 * file, a client) is quoted, escaped, and cut short, so that one line stays
 * one readable line whatever the value holds.
 *
 * @since 0.1.0
 */
import * as Result from "effect/Result"

/** The most characters of a value a message shows. */
export const maxQuoted = 80

/** `text` in double quotes with control characters and quotes escaped, at most {@link maxQuoted} characters of it. */
export const quote = (text: string): string =>
  text.length <= maxQuoted
    ? JSON.stringify(text)
    : `${JSON.stringify(text.slice(0, maxQuoted))}... (${text.length} characters)`

/** `text` with control characters shown as escapes (`\u0007`), so that it stays on one line and prints safely. */
export const escapeControls = (text: string): string =>
  text.replace(/[\u0000-\u001f\u007f-\u009f]/g, (char) => `\\u${char.charCodeAt(0).toString(16).padStart(4, "0")}`)

/**
 * Reads the escapes a flag's text may carry (`\r`, `\n`, `\t`, `\\` and
 * `\xHH`) into the characters they stand for; fails on any other backslash.
 */
export const unescape = (text: string): Result.Result<string, string> => {
  let out = ""
  for (let i = 0; i < text.length; i++) {
    const char = text[i]!
    if (char !== "\\") {
      out += char
      continue
    }
    const next = text[i + 1]
    if (next === "r") out += "\r"
    else if (next === "n") out += "\n"
    else if (next === "t") out += "\t"
    else if (next === "\\") out += "\\"
    else if (next === "x" && /^[0-9a-fA-F]{2}$/.test(text.slice(i + 2, i + 4))) {
      out += String.fromCharCode(parseInt(text.slice(i + 2, i + 4), 16))
      i += 2
    } else {
      return Result.fail(`unknown escape at character ${i + 1} (use \\r, \\n, \\t, \\\\ or \\xHH)`)
    }
    i++
  }
  return Result.succeed(out)
}

/** One byte as {@link unescape} reads it back: printable ASCII as is (but `\` and `"`), escapes for the rest. */
const escapeByte = (byte: number): string => {
  switch (byte) {
    case 0x0d:
      return "\\r"
    case 0x0a:
      return "\\n"
    case 0x09:
      return "\\t"
    case 0x5c:
      return "\\\\"
    case 0x22:
      return "\\x22"
  }
  return byte >= 0x20 && byte < 0x7f ? String.fromCharCode(byte) : `\\x${byte.toString(16).padStart(2, "0")}`
}

/**
 * Bytes in double quotes, written with the escapes a flag takes (`\r`, `\n`,
 * `\t`, `\\`, `\xHH`), at most `max` of them (then `...`): what a backend sent,
 * on one line, and text that `--health-expect` would take back.
 */
export const quoteBytes = (bytes: Uint8Array, max: number): string => {
  let out = ""
  for (const byte of bytes.subarray(0, max)) out += escapeByte(byte)
  return `"${out}"${bytes.length > max ? "..." : ""}`
}
