import type { Logger, Message, StageOutput } from "@geowatch/core";
import { describe, expect, it } from "vitest";
import { createFenceIndex, geofence, loadFences } from "../src/index.js";
import { PointWorkers } from "../src/point-workers.js";
import { countries, fenceFeature, rng } from "./helpers.js";

// The worker threads run the built script (dist/point-worker.js): `pnpm build` comes before the tests.

const FENCES = countries();

/** Tracks walking across countries (many inside MultiPolygons), some positions as envelopes or lines. */
function walk(tracks: number, steps: number, seed: number): Message[] {
  const rand = rng(seed);
  const out: Message[] = [];
  const pos = Array.from({ length: tracks }, () => [-20 + 60 * rand(), 30 * rand()] as [number, number]);
  for (let s = 0; s < steps; s++) {
    for (let t = 0; t < tracks; t++) {
      const p = pos[t]!;
      p[0] += (rand() - 0.5) * 4;
      p[1] += (rand() - 0.5) * 4;
      const id = `t${t}`;
      const point = { type: "Feature", properties: { id }, geometry: { type: "Point", coordinates: [p[0], p[1]] } };
      const r = rand();
      const value = r < 0.05
        ? { type: "Feature", properties: { id }, geometry: { type: "LineString", coordinates: [[p[0], p[1]], [p[0] + 1, p[1] + 1]] } }
        : r < 0.1 ? { metadata: { actiontype: "update" }, data: point } : point;
      out.push({ value, position: { stream: "s", offset: out.length, next: out.length + 1 } });
    }
  }
  return out;
}

const events = (out: StageOutput) => out.pass.map((m) => {
  const md = (m.value as { metadata: Record<string, unknown> }).metadata;
  return `${String(md.actiontype)}:${String(md.fence)}:${String(md.track)}`;
});

/** Runs batches through a stage as the broker does (prepare when asked, process in order, commit). */
async function runAll(workers: number, batches: Message[][], prepare: (i: number) => boolean, logger?: Logger): Promise<string[]> {
  const stage = geofence({ fences: FENCES, trackId: "properties.id", events: ["enter", "exit", "inside"], workers }, logger ? { logger } : {});
  await stage.open?.();
  try {
    // prepare() for every batch first, as the broker calls it for batches waiting behind the one in process().
    batches.forEach((b, i) => prepare(i) && stage.prepare?.(b));
    const got: string[] = [];
    for (const b of batches) {
      const out = await stage.process(b);
      await out.commit?.();
      got.push(...events(out));
    }
    return got;
  } finally {
    await stage.close?.();
  }
}

describe("geofence workers", () => {
  it("give the same events as the main thread, with and without prepare(), points, lines and envelopes mixed", async () => {
    const msgs = walk(150, 12, 7);
    const batches: Message[][] = [];
    for (let i = 0; i < msgs.length; i += 200) batches.push(msgs.slice(i, i + 200));
    // A batch under the workers' minimum size is tested on the main thread.
    batches.push(walk(10, 1, 8).map((m) => ({ ...m, position: { stream: "s", offset: msgs.length, next: msgs.length + 1 } })));
    const inline = await runAll(0, batches, () => false);
    expect(inline.length).toBeGreaterThan(200);
    // Any warning or error would say the workers did not start or failed (and the main thread answered).
    const said: string[] = [];
    const logger: Logger = { debug() {}, info() {}, warn: (m) => void said.push(m), error: (m) => void said.push(m) };
    expect(await runAll(1, batches, (i) => i % 2 === 0, logger)).toEqual(inline);
    expect(await runAll(3, batches, () => true, logger)).toEqual(inline);
    expect(said.filter((m) => /worker/.test(m))).toEqual([]);
  });

  it("leave bad input to the main thread: the same dead letters, reasons and events as without workers", async () => {
    const msgs = walk(80, 2, 9);
    const deep = JSON.parse(`{"type":"Feature","properties":{"id":"t1"},"geometry":{"type":"Point","coordinates":[1,2]},"extra":${'{"a":'.repeat(5000)}1${"}".repeat(5000)}}`) as unknown;
    const bad: unknown[] = [
      { type: "Feature", properties: { id: "t2" }, geometry: { type: "Point", coordinates: [Number.NaN, 1] } },
      { type: "Feature", properties: { id: "t3" }, geometry: { type: "Point", coordinates: ["1", 2] } },
      { type: "Feature", properties: { id: "t4" }, geometry: { type: "Point" } },
      JSON.parse('{"type":"Feature","properties":{"id":"t5","__proto__":{"polluted":1}},"geometry":{"type":"Point","coordinates":[10,50]}}'),
      { type: "Feature", properties: {}, geometry: { type: "Point", coordinates: [10, 50] } },
      deep,
      null,
      "text",
    ];
    bad.forEach((value, i) => msgs.splice(7 * i + 3, 0, { value, position: { stream: "s", offset: 10_000 + i, next: 10_001 + i } }));
    const outcome = async (workers: number) => {
      const stage = geofence({ fences: FENCES, trackId: "properties.id", events: ["enter", "exit", "inside"], workers });
      await stage.open?.();
      try {
        stage.prepare?.(msgs);
        const out = await stage.process(msgs);
        await out.commit?.();
        return { events: events(out), dead: (out.dead ?? []).map((d) => [msgs.indexOf(d.message), d.reason]) };
      } finally {
        await stage.close?.();
      }
    };
    const inline = await outcome(0);
    expect(inline.dead.length).toBeGreaterThanOrEqual(5);
    expect(await outcome(1)).toEqual(inline);
    expect(({} as Record<string, unknown>).polluted).toBeUndefined();
  });

  it("answer as the index does; a worker that dies leaves its queries and later ones to the main thread, logged once", async () => {
    const index = createFenceIndex(loadFences(FENCES));
    const rand = rng(11);
    const n = 5000;
    const xy = new Float64Array(2 * n);
    for (let i = 0; i < n; i++) {
      xy[2 * i] = -180 + 360 * rand();
      xy[2 * i + 1] = -60 + 140 * rand();
    }
    const expected = index.queryPoints(xy, n);
    expect(expected.hits.length).toBeGreaterThan(1000);
    const errors: string[] = [];
    const logger: Logger = { debug() {}, info() {}, warn() {}, error: (msg) => void errors.push(msg) };
    const pool = PointWorkers.start(index, 2, logger, "gf")!;
    await pool.ready;
    try {
      expect(await pool.query(xy, n)).toEqual(expected);
      // Kill one worker while it holds a query.
      const pending = pool.query(xy, n);
      await (pool as unknown as { rings: Array<{ worker: { terminate(): Promise<number> } }> }).rings[0]!.worker.terminate();
      expect(await pending).toEqual(expected);
      expect(await pool.query(xy, n)).toEqual(expected);
      expect(errors).toEqual(["geofence: a point worker failed; points are tested on the main thread from now on"]);
    } finally {
      await pool.close();
    }
  });
  it("answer through the shared ring: more queries than slots at once, queries larger than a slot, and more hits than a slot holds", async () => {
    // 12 fences stacked on one square (every point in it is in all 12) next to the countries.
    const fc = countries();
    const square = [[[100, -40], [110, -40], [110, -30], [100, -30], [100, -40]]];
    for (let k = 0; k < 12; k++) fc.features.push(fenceFeature(`S${k}`, square));
    const index = createFenceIndex(loadFences(fc));
    const rand = rng(12);
    const points = (n: number, inSquare: boolean): Float64Array => {
      const xy = new Float64Array(2 * n);
      for (let i = 0; i < n; i++) {
        xy[2 * i] = inSquare ? 100 + 10 * rand() : -180 + 360 * rand();
        xy[2 * i + 1] = inSquare ? -40 + 10 * rand() : -60 + 140 * rand();
      }
      return xy;
    };
    const errors: string[] = [];
    const logger: Logger = { debug() {}, info() {}, warn: (m) => void errors.push(m), error: (m) => void errors.push(m) };
    const pool = PointWorkers.start(index, 2, logger, "gf")!;
    await pool.ready;
    try {
      // 40 queries submitted before any answer is asked for: 2 workers x 8 slots, the rest queued.
      const qs = Array.from({ length: 40 }, (_, i) => points(100 + i, false));
      const submitted = qs.map((xy) => pool.submit(xy, xy.length / 2));
      for (let i = qs.length - 1; i >= 0; i--) expect(await pool.wait(submitted[i]!)).toEqual(index.queryPoints(qs[i]!, qs[i]!.length / 2));
      // 20,000 points: split into parts of at most a slot's 4,096.
      const big = points(20_000, false);
      expect(await pool.query(big, 20_000)).toEqual(index.queryPoints(big, 20_000));
      // 3,000 points in the 12 stacked fences: 36,000 hits, more than a slot holds; answered on the main thread.
      const stacked = points(3000, true);
      const want = index.queryPoints(stacked, 3000);
      expect(want.hits.length).toBe(36_000);
      expect(await pool.query(stacked, 3000)).toEqual(want);
      // A query answered while nobody waited is there synchronously.
      const q = pool.submit(big.subarray(0, 200), 100);
      await new Promise((r) => setTimeout(r, 50));
      expect(pool.take(q)).toEqual(index.queryPoints(big, 100));
      expect(errors).toEqual([]);
    } finally {
      await pool.close();
    }
  });
});
