/**
 * Worker threads that test a batch's points against the fences while the main thread goes on (decoding the next
 * batch): the geofence stage's `workers` option. Each worker holds a copy of the fence index's arrays.
 *
 * Points and answers go through shared memory, not messages: each worker has a ring of slots in a
 * SharedArrayBuffer. The main thread copies a query's points into a free slot and bumps `posted`; the worker, blocked
 * in `Atomics.wait` while it has nothing to do, answers into the same slot and bumps `done`. The main thread copies
 * answers out of the ring as soon as it sees them (`drain`), so a slot is never held by a query nobody asks about
 * again. A query whose answer is there is read synchronously (`take`): no message, no event, no promise per batch.
 * Measured in the geofence-e2e bench, a message each way cost the main thread 50-90 us per batch.
 *
 * A worker that fails or exits is not replaced: its queries and all later ones are answered on the main thread
 * (logged once).
 */
import { existsSync } from "node:fs";
import { fileURLToPath } from "node:url";
import { Worker } from "node:worker_threads";
import type { Logger } from "@geowatch/core";
import type { FenceIndex, PointQueryData } from "./fence-index.js";

export interface PointHits {
  /** Per point, how many fences hold it. */
  counts: Uint32Array;
  /** The fences' indices, ascending per point, one point after the other. */
  hits: Int32Array;
}

/** The ring's layout, shared with the worker script (`point-worker.ts`). */
export interface RingLayout {
  /** Slots in the ring: queries a worker may hold at once. */
  slots: number;
  /** Most points per slot (a larger query is split). */
  cap: number;
  /** Most fence hits per slot; a part with more is answered on the main thread. */
  hitCap: number;
}

/** Header words (Int32): queries posted by the main thread, answered by the worker, and a stop request. */
export const POSTED = 0, DONE = 1, STOP = 2;
const HEADER_BYTES = 16;

/** The views of a ring in its SharedArrayBuffer, the same in both threads. */
export function ringViews(sab: SharedArrayBuffer, l: RingLayout): { head: Int32Array; xy: Float64Array; meta: Int32Array; counts: Uint32Array; hits: Int32Array } {
  let at = HEADER_BYTES;
  const xy = new Float64Array(sab, at, l.slots * 2 * l.cap);
  at += xy.byteLength;
  const counts = new Uint32Array(sab, at, l.slots * l.cap);
  at += counts.byteLength;
  const hits = new Int32Array(sab, at, l.slots * l.hitCap);
  at += hits.byteLength;
  // Per slot: the number of points, then the number of hits answered (-1: more than hitCap).
  const meta = new Int32Array(sab, at, l.slots * 2);
  return { head: new Int32Array(sab, 0, 4), xy, meta, counts, hits };
}

export function ringBytes(l: RingLayout): number {
  return HEADER_BYTES + l.slots * (16 * l.cap + 4 * l.cap + 4 * l.hitCap + 8);
}

/** `Atomics.waitAsync` (Node 16+; not in the ES2023 library types this project compiles against). */
const waitAsync = (Atomics as unknown as {
  waitAsync(a: Int32Array, at: number, value: number, timeoutMs: number): { async: false; value: string } | { async: true; value: Promise<string> };
}).waitAsync;

const LAYOUT: RingLayout = { slots: 8, cap: 4096, hitCap: 8192 };

/** The worker script: next to this module in the built package (`dist/`); from the sources, the built one. */
function workerFile(): string | undefined {
  for (const rel of ["./point-worker.js", "../dist/point-worker.js"]) {
    const path = fileURLToPath(new URL(rel, import.meta.url));
    if (existsSync(path)) return path;
  }
  return undefined;
}

/** A piece of a query, tested by one worker in one slot. */
interface Part {
  /** The ring it goes to (its index in `rings`). */
  ring: number;
  xy: Float64Array;
  n: number;
  answer: PointHits | undefined;
}

/** A batch's points submitted to the workers; `take` or `wait` gives its answer. */
export interface PointQuery {
  readonly n: number;
  /** @internal */ parts: Part[];
  /** @internal */ xy: Float64Array;
}

interface Ring {
  worker: Worker;
  head: Int32Array;
  xy: Float64Array;
  meta: Int32Array;
  counts: Uint32Array;
  hits: Int32Array;
  /** Answers copied out of the ring (parts posted: `drained + inRing.length`, what head[POSTED] holds). */
  drained: number;
  /** Parts in the ring (posted, not drained), oldest first; and parts waiting for a free slot. */
  inRing: Part[];
  queued: Part[];
}

export class PointWorkers {
  private rings: Ring[] = [];
  /** Settles when every worker has built its index (or one failed first: then the main thread answers). */
  ready: Promise<void> = Promise.resolve();
  private next = 0;
  private failed = false;
  private closed = false;
  /** Callers in `wait`: while there are any, the workers keep the process alive. */
  private waiting = 0;

  private constructor(
    private readonly index: FenceIndex,
    private readonly logger: Logger | undefined,
    private readonly stage: string,
  ) {}

  /** `count` workers over the index, or undefined when the index has no point grid or the script is not built. */
  static start(index: FenceIndex, count: number, logger: Logger | undefined, stage: string): PointWorkers | undefined {
    const data = index.pointQueryData();
    const file = workerFile();
    if (data === undefined || file === undefined) {
      logger?.warn("geofence: workers not started; points are tested on the main thread", { stage, reason: data === undefined ? "the fence index has no point grid" : "the worker script is not built (pnpm build)" });
      return undefined;
    }
    const pool = new PointWorkers(index, logger, stage);
    const ready: Array<Promise<void>> = [];
    for (let i = 0; i < count; i++) {
      const sab = new SharedArrayBuffer(ringBytes(LAYOUT));
      const workerData: { index: PointQueryData; sab: SharedArrayBuffer; layout: RingLayout } = { index: data, sab, layout: LAYOUT };
      const worker = new Worker(file, { workerData });
      // An idle worker does not keep the process alive (the stage's close() ends it); one waited for does.
      worker.unref();
      const ring: Ring = { worker, ...ringViews(sab, LAYOUT), drained: 0, inRing: [], queued: [] };
      let isReady!: () => void;
      ready.push(new Promise<void>((r) => (isReady = r)));
      worker.on("message", (m: { ready?: true }) => {
        if (m.ready) isReady();
      });
      const fail = (err: Error): void => {
        isReady();
        pool.fail(err);
      };
      worker.on("error", fail);
      worker.on("exit", (code) => fail(new Error(`worker exited with code ${code}`)));
      pool.rings.push(ring);
    }
    pool.ready = Promise.all(ready).then(() => undefined);
    return pool;
  }

  /**
   * Submits `n` points (`xy` interleaved; unchanged until answered: the main thread reads it should a worker
   * fail), split across the workers. Never blocks: a part that finds its worker's ring full waits in a queue.
   */
  submit(xy: Float64Array, n: number): PointQuery {
    const q: PointQuery = { n, parts: [], xy };
    if (this.failed || this.closed || this.rings.length === 0) return q;
    const w = this.rings.length;
    const per = Math.min(LAYOUT.cap, Math.max(1, Math.ceil(n / w)));
    for (let from = 0; from < n; from += per) {
      const to = Math.min(n, from + per);
      const part: Part = { ring: this.next, xy: xy.subarray(2 * from, 2 * to), n: to - from, answer: undefined };
      q.parts.push(part);
      const ring = this.rings[this.next]!;
      this.next = (this.next + 1) % w;
      this.drain(ring);
      if (ring.queued.length === 0 && ring.inRing.length < LAYOUT.slots) this.post(ring, part);
      else ring.queued.push(part);
    }
    return q;
  }

  /** The query's answer if every part is answered (or the workers failed: then computed here), else undefined. */
  take(q: PointQuery): PointHits | undefined {
    if (this.failed || this.closed || q.parts.length === 0) return this.index.queryPoints(q.xy, q.n);
    for (const part of q.parts) {
      if (part.answer === undefined) {
        for (const ring of this.rings) this.drain(ring);
        if (part.answer === undefined) return undefined;
      }
    }
    if (q.parts.length === 1) return q.parts[0]!.answer!;
    const counts = new Uint32Array(q.n);
    let total = 0;
    for (const p of q.parts) total += p.answer!.hits.length;
    const hits = new Int32Array(total);
    let c = 0, h = 0;
    for (const p of q.parts) {
      counts.set(p.answer!.counts, c);
      hits.set(p.answer!.hits, h);
      c += p.n;
      h += p.answer!.hits.length;
    }
    return { counts, hits };
  }

  /** The query's answer, waiting for the workers (`Atomics.waitAsync` on the rings' `done` words) when needed. */
  async wait(q: PointQuery): Promise<PointHits> {
    let got = this.take(q);
    if (got !== undefined) return got;
    if (this.waiting++ === 0) for (const r of this.rings) r.worker.ref();
    try {
      for (;;) {
        // The ring of the first part still unanswered (take() found one, or answered all).
        const part = q.parts.find((p) => p.answer === undefined);
        const ring = part === undefined ? undefined : this.rings[part.ring];
        if (ring !== undefined) {
          const seen = ring.head[DONE]!;
          if (seen === ring.drained) {
            // Bounded, so a worker that died without an event (or a missed wake-up) cannot hold a batch forever.
            const w = waitAsync(ring.head, DONE, seen, 1000);
            if (w.async) await w.value;
          }
        }
        got = this.take(q);
        if (got !== undefined) return got;
      }
    } finally {
      if (--this.waiting === 0) for (const r of this.rings) r.worker.unref();
    }
  }

  /** The fences of `n` points (`xy` interleaved), split across the workers; on the main thread once one failed. */
  query(xy: Float64Array, n: number): Promise<PointHits> {
    return this.wait(this.submit(xy, n));
  }

  private post(ring: Ring, part: Part): void {
    const posted = ring.drained + ring.inRing.length;
    const slot = posted % LAYOUT.slots;
    ring.xy.set(part.xy, slot * 2 * LAYOUT.cap);
    ring.meta[2 * slot] = part.n;
    ring.inRing.push(part);
    Atomics.store(ring.head, POSTED, posted + 1);
    Atomics.notify(ring.head, POSTED);
  }

  /** Copies the answers the worker has written out of its ring, then posts queued parts into the freed slots. */
  private drain(ring: Ring): void {
    const done = Atomics.load(ring.head, DONE);
    if (done === ring.drained) return;
    while (ring.drained < done) {
      const slot = ring.drained % LAYOUT.slots;
      const part = ring.inRing.shift()!;
      const nh = ring.meta[2 * slot + 1]!;
      if (nh < 0) {
        // More hits than the slot holds: tested here.
        part.answer = this.index.queryPoints(part.xy, part.n);
      } else {
        const c0 = slot * LAYOUT.cap, h0 = slot * LAYOUT.hitCap;
        part.answer = { counts: ring.counts.slice(c0, c0 + part.n), hits: ring.hits.slice(h0, h0 + nh) };
      }
      ring.drained++;
    }
    while (ring.queued.length > 0 && ring.inRing.length < LAYOUT.slots) this.post(ring, ring.queued.shift()!);
  }

  private fail(err: Error): void {
    if (this.closed || this.failed) return;
    this.failed = true;
    this.logger?.error("geofence: a point worker failed; points are tested on the main thread from now on", { stage: this.stage, error: err.message });
    void this.stopAll();
  }

  /** Asks every worker to stop, wakes anyone waiting for one, and ends them. */
  private stopAll(): Promise<unknown> {
    const ends: Array<Promise<number>> = [];
    for (const r of this.rings) {
      Atomics.store(r.head, STOP, 1);
      Atomics.notify(r.head, POSTED);
      // A caller in wait() sees `failed` or `closed` and answers on the main thread.
      Atomics.notify(r.head, DONE);
      ends.push(r.worker.terminate());
    }
    return Promise.all(ends);
  }

  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    await this.stopAll();
  }
}
