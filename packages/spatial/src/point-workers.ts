/**
 * Worker threads that test a batch's points against the fences while the main thread goes on (decoding the next
 * batch): the geofence stage's `workers` option. Each worker holds a copy of the fence index's arrays. A worker
 * that fails or exits is not replaced: its queries and all later ones are answered on the main thread (logged once).
 */
import { existsSync } from "node:fs";
import { fileURLToPath } from "node:url";
import { Worker } from "node:worker_threads";
import type { Logger } from "@geowatch/core";
import type { FenceIndex } from "./fence-index.js";

export interface PointHits {
  /** Per point, how many fences hold it. */
  counts: Uint32Array;
  /** The fences' indices, ascending per point, one point after the other. */
  hits: Int32Array;
}

/** The worker script: next to this module in the built package (`dist/`); from the sources, the built one. */
function workerFile(): string | undefined {
  for (const rel of ["./point-worker.js", "../dist/point-worker.js"]) {
    const path = fileURLToPath(new URL(rel, import.meta.url));
    if (existsSync(path)) return path;
  }
  return undefined;
}

interface Slot {
  worker: Worker;
  waiting: Map<number, { resolve: (h: PointHits) => void; reject: (e: Error) => void }>;
}

export class PointWorkers {
  private slots: Slot[] = [];
  /** Settles when every worker has built its index (or one failed first: then the main thread answers). */
  ready: Promise<void> = Promise.resolve();
  private nextId = 1;
  private failed = false;
  private closed = false;

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
      const worker = new Worker(file, { workerData: data });
      // An idle worker does not keep the process alive (the stage's close() ends it); one with a query does.
      worker.unref();
      const slot: Slot = { worker, waiting: new Map() };
      let isReady!: () => void;
      ready.push(new Promise<void>((r) => (isReady = r)));
      worker.on("message", (m: { ready?: true; id: number; counts: Uint32Array; hits: Int32Array }) => {
        if (m.ready) return isReady();
        const w = slot.waiting.get(m.id);
        slot.waiting.delete(m.id);
        if (slot.waiting.size === 0) worker.unref();
        w?.resolve({ counts: m.counts, hits: m.hits });
      });
      const fail = (err: Error): void => {
        isReady();
        pool.fail(slot, err);
      };
      worker.on("error", fail);
      worker.on("exit", (code) => fail(new Error(`worker exited with code ${code}`)));
      pool.slots.push(slot);
    }
    pool.ready = Promise.all(ready).then(() => undefined);
    return pool;
  }

  /** The fences of `n` points (`xy` interleaved), split across the workers; on the main thread once one failed. */
  async query(xy: Float64Array, n: number): Promise<PointHits> {
    if (this.failed || this.closed || this.slots.length === 0) return this.index.queryPoints(xy, n);
    const w = this.slots.length;
    const per = Math.ceil(n / w);
    const parts: Array<Promise<PointHits>> = [];
    for (let i = 0; i < w && i * per < n; i++) {
      const from = i * per, to = Math.min(n, from + per);
      // A copy goes (transferred): `xy` stays here for the main thread, should a worker fail.
      parts.push(this.send(this.slots[i]!, xy.slice(2 * from, 2 * to), to - from));
    }
    let got: PointHits[];
    try {
      got = await Promise.all(parts);
    } catch {
      return this.index.queryPoints(xy, n);
    }
    if (got.length === 1) return got[0]!;
    const counts = new Uint32Array(n);
    let total = 0;
    for (const g of got) total += g.hits.length;
    const hits = new Int32Array(total);
    let c = 0, h = 0;
    for (const g of got) {
      counts.set(g.counts, c);
      hits.set(g.hits, h);
      c += g.counts.length;
      h += g.hits.length;
    }
    return { counts, hits };
  }

  private send(slot: Slot, xy: Float64Array, n: number): Promise<PointHits> {
    const id = this.nextId++;
    return new Promise<PointHits>((resolve, reject) => {
      slot.waiting.set(id, { resolve, reject });
      slot.worker.ref();
      slot.worker.postMessage({ id, xy, n }, [xy.buffer as ArrayBuffer]);
    });
  }

  private fail(slot: Slot, err: Error): void {
    if (this.closed) return;
    if (!this.failed) {
      this.failed = true;
      this.logger?.error("geofence: a point worker failed; points are tested on the main thread from now on", { stage: this.stage, error: err.message });
    }
    for (const w of slot.waiting.values()) w.reject(err);
    slot.waiting.clear();
    for (const s of this.slots) void s.worker.terminate();
  }

  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    const slots = this.slots;
    this.slots = [];
    for (const s of slots) for (const w of s.waiting.values()) w.reject(new Error("closed"));
    await Promise.all(slots.map((s) => s.worker.terminate()));
  }
}
