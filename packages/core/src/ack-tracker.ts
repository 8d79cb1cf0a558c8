import type { InRecord, Position } from "./types.js";

interface Segment {
  stream: string;
  next: string | number;
  done: boolean;
}

/**
 * Commit bookkeeping for ordered sources. Batches finish out of order; a stream's position may only
 * move past a record once it and every earlier record of that stream are acknowledged. Each batch
 * registers one segment per stream (its last `next`), so the cost is per batch, not per record.
 */
export class AckTracker {
  private readonly streams = new Map<string, Segment[]>();

  /** Registers a batch; returns a token to pass to `done`. */
  track(records: readonly InRecord[]): Segment[] {
    const last = new Map<string, Position>();
    for (const r of records) if (r.position) last.set(r.position.stream, r.position);
    const segments: Segment[] = [];
    for (const [stream, pos] of last) {
      const seg: Segment = { stream, next: pos.next, done: false };
      let queue = this.streams.get(stream);
      if (!queue) this.streams.set(stream, (queue = []));
      queue.push(seg);
      segments.push(seg);
    }
    return segments;
  }

  /** Marks a batch acknowledged; returns the positions that may now be committed. */
  done(segments: Segment[]): Position[] {
    const out: Position[] = [];
    for (const seg of segments) {
      seg.done = true;
      const stream = seg.stream;
      const queue = this.streams.get(stream);
      if (!queue) continue;
      let advanced: Segment | undefined;
      let i = 0;
      while (i < queue.length && queue[i]!.done) advanced = queue[i++];
      if (advanced) {
        queue.splice(0, i);
        out.push({ stream, offset: advanced.next, next: advanced.next });
      }
      if (queue.length === 0) this.streams.delete(stream);
    }
    return out;
  }

  /** Forgets a stream (a revoked partition): its pending segments will never commit. */
  forget(stream: string): void {
    this.streams.delete(stream);
  }

  get pendingStreams(): number {
    return this.streams.size;
  }
}

/**
 * Coalesces commits: while one commit runs, later positions pile up and go out together in the next,
 * the latest position per stream winning. Each caller resolves once a commit covering it succeeded.
 */
export class CommitCoalescer {
  private pending = new Map<string, Position>();
  private waiters: Array<{ resolve: () => void; reject: (err: unknown) => void }> = [];
  private running = false;

  constructor(private readonly commit: (positions: Position[]) => Promise<void>) {}

  add(positions: Position[]): Promise<void> {
    for (const p of positions) this.pending.set(p.stream, p);
    const done = new Promise<void>((resolve, reject) => this.waiters.push({ resolve, reject }));
    if (!this.running) void this.loop();
    return done;
  }

  private async loop(): Promise<void> {
    this.running = true;
    while (this.pending.size > 0) {
      const batch = [...this.pending.values()];
      const waiters = this.waiters;
      this.pending = new Map();
      this.waiters = [];
      try {
        await this.commit(batch);
        for (const w of waiters) w.resolve();
      } catch (err) {
        for (const w of waiters) w.reject(err);
      }
    }
    this.running = false;
  }
}
