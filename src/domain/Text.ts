/**
 * Text as messages show it: a value that came from outside (a flag, a config
 * file, a client) is quoted, escaped, and cut short, so that one line stays
 * one readable line whatever the value holds.
 *
 * @since 0.1.0
 */

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
