/**
 * A loop's sleep that a nudge cuts short. A nudge while the loop is awake is kept, so the
 * next sleep returns at once: a wake-up that arrives during a round of work is never lost.
 */
export class Waker {
  private wake: (() => void) | null = null;
  private nudged = false;

  nudge(): void {
    this.nudged = true;
    this.wake?.();
  }

  /** Resolves after `ms`, or at the first nudge (now, if one came since the last sleep). */
  sleep(ms: number): Promise<void> {
    if (this.nudged) {
      this.nudged = false;
      return Promise.resolve();
    }
    return new Promise((resolve) => {
      const done = () => {
        clearTimeout(timer);
        this.wake = null;
        this.nudged = false;
        resolve();
      };
      const timer = setTimeout(done, ms);
      this.wake = done;
    });
  }
}

/** Exponential backoff: `base_ms` doubled per failure so far, never above `max_ms`. */
export function backoffMs(failures: number, base_ms: number, max_ms: number): number {
  return Math.min(max_ms, base_ms * 2 ** Math.min(failures, 30));
}

/**
 * Runs `fn` on the next turn of the event loop, once however often it was asked for before
 * then: batchers start their next batch this way, so callers woken by the last one have
 * sent their next work by the time it forms.
 */
export class NextTurn {
  private scheduled = false;

  constructor(private readonly fn: () => void) {}

  request(): void {
    if (this.scheduled) return;
    this.scheduled = true;
    setImmediate(() => {
      this.scheduled = false;
      this.fn();
    });
  }
}
