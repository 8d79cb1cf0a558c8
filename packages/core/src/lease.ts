/** Options of a `LeaseKeeper`. */
export interface LeaseKeeperOptions<H> {
  /**
   * How often the leases are extended, in ms: well inside the lease length (a third of it is usual).
   * `0`: no timer, the keeper only tracks (call `tick` to extend).
   */
  intervalMs: number;
  /** The identity of a handle: handles with the same key are the same lease. */
  key(handle: H): string;
  /**
   * Extends the leases of `handles`, all in one call so a backend can do it in one request. Returns the
   * handles whose leases were already lost (the keeper forgets them), or nothing.
   */
  extend(handles: H[]): H[] | void | Promise<H[] | void>;
  /** Sees an error `extend` threw; the keeper tries again at the next tick. */
  onError?(err: unknown): void;
  /**
   * Stop extending a lease this long after it was tracked, in ms, so a process that hangs on a message
   * cannot hold it for ever: the lease then runs out and the message is redelivered. Default: no limit.
   */
  maxHoldMs?: number;
  /** The clock, for tests. Default `Date.now`. */
  now?(): number;
}

/**
 * Keeps the leases of messages in flight alive, as a consumer with a visibility timeout must while its
 * batches are processed: `track` what a receive handed out, `forget` what was acked or nacked, and every
 * `intervalMs` the rest is extended in one `extend` call, until `stop`. The timer runs only while something
 * is tracked and does not keep the process alive; a killed process stops extending, so its leases run out
 * and the messages are redelivered.
 */
export class LeaseKeeper<H> {
  private readonly o: LeaseKeeperOptions<H>;
  private readonly held = new Map<string, { handle: H; since: number }>();
  private timer: NodeJS.Timeout | undefined;
  private running: Promise<void> | undefined;
  private stopped = false;

  constructor(options: LeaseKeeperOptions<H>) {
    if (!(options.intervalMs >= 0)) throw new RangeError(`LeaseKeeper intervalMs must be >= 0, got ${options.intervalMs}`);
    this.o = options;
  }

  /** How many leases are held. */
  get size(): number {
    return this.held.size;
  }

  /** The handles held now. */
  handles(): H[] {
    return [...this.held.values()].map((e) => e.handle);
  }

  /** Starts keeping these leases (ignored after `stop`). */
  track(handles: Iterable<H>): void {
    if (this.stopped) return;
    const since = this.now();
    for (const h of handles) this.held.set(this.o.key(h), { handle: h, since });
    if (this.held.size > 0 && !this.timer && this.o.intervalMs > 0) {
      this.timer = setInterval(() => void this.tick(), this.o.intervalMs);
      this.timer.unref();
    }
  }

  /** Stops keeping these leases (acked, nacked, or lost); returns how many were held. */
  forget(handles: Iterable<H>): number {
    let n = 0;
    for (const h of handles) if (this.held.delete(this.o.key(h))) n++;
    if (this.held.size === 0) this.clearTimer();
    return n;
  }

  /**
   * Extends every lease held now, in one `extend` call; the timer calls this. Never rejects. A tick while
   * one is running waits for that one instead of overlapping it.
   */
  tick(): Promise<void> {
    if (this.running) return this.running;
    if (this.stopped || this.held.size === 0) return Promise.resolve();
    const now = this.now();
    const limit = this.o.maxHoldMs;
    const handles: H[] = [];
    const expired: H[] = [];
    for (const { handle, since } of this.held.values()) (limit !== undefined && now - since >= limit ? expired : handles).push(handle);
    // Past the hold limit: let the lease run out rather than extend it again.
    if (expired.length > 0) this.forget(expired);
    if (handles.length === 0) return Promise.resolve();
    const run = Promise.resolve()
      .then(() => this.o.extend(handles))
      .then(
        (lost) => {
          if (lost) this.forget(lost);
        },
        (err: unknown) => {
          try {
            this.o.onError?.(err);
          } catch {
            // An error reporter that throws must not stop the keeper.
          }
        },
      )
      .finally(() => {
        this.running = undefined;
      });
    this.running = run;
    return run;
  }

  /** Stops extending and returns the handles still held (for example to hand them back at once). */
  stop(): H[] {
    this.stopped = true;
    this.clearTimer();
    const left = this.handles();
    this.held.clear();
    return left;
  }

  private now(): number {
    return this.o.now ? this.o.now() : Date.now();
  }

  private clearTimer(): void {
    if (this.timer) clearInterval(this.timer);
    this.timer = undefined;
  }
}
