/**
 * How many lines of one kind may be written per second, and how many were
 * left out: the log volume a flood of bad clients can cause is bounded, and
 * what was dropped is still said (as a count).
 *
 * @since 0.1.0
 */

/** Lines of one kind in the current one-second window. */
interface Window {
  start: number
  written: number
  suppressed: number
}

/** Per-kind budgets of lines per second. Mutable: one per process part that logs. */
export class LogBudget {
  readonly #windows = new Map<string, Window>()

  /** Whether a line of `kind` may be written at `now` (ms) within `perSecond`; counts it either way. */
  admit(kind: string, perSecond: number, now: number): boolean {
    let window = this.#windows.get(kind)
    if (window === undefined) {
      window = { start: now, written: 0, suppressed: 0 }
      this.#windows.set(kind, window)
    } else if (now - window.start >= 1000) {
      // A new window; what the last one left out stays counted until `drain` reports it.
      window.start = now
      window.written = 0
    }
    if (window.written < perSecond) {
      window.written++
      return true
    }
    window.suppressed++
    return false
  }

  /**
   * The kinds that had lines left out, with how many, forgetting them; kinds
   * whose window is over and had nothing left out are forgotten too, so the
   * map holds only the kinds seen in the last second.
   */
  drain(now: number): ReadonlyArray<{ readonly kind: string; readonly suppressed: number }> {
    const out: Array<{ readonly kind: string; readonly suppressed: number }> = []
    for (const [kind, window] of this.#windows) {
      if (window.suppressed > 0) {
        out.push({ kind, suppressed: window.suppressed })
        window.suppressed = 0
      }
      if (now - window.start >= 1000) this.#windows.delete(kind)
    }
    return out
  }
}
