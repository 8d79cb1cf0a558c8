import { spawn, spawnSync } from "node:child_process";
import { existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, statSync, unlinkSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, describe, expect, it } from "vitest";
import { seededRandom as rng } from "@geowatch/testkit";

const BIN = new URL("../bin/geowatch.js", import.meta.url).pathname;
const env = { ...process.env, GEOWATCH_LOG_LEVEL: "error" };


const square = (id: string, x0: number, y0: number, x1: number, y1: number) => ({
  type: "Feature",
  id,
  properties: {},
  geometry: { type: "Polygon", coordinates: [[[x0, y0], [x1, y0], [x1, y1], [x0, y1], [x0, y0]]] },
});
const FENCES = {
  type: "FeatureCollection",
  features: [square("A", 0, 0, 10, 10), square("B", 20, 0, 30, 10), square("C", 5, 5, 15, 15), square("D", 0, 20, 30, 30)],
};

/**
 * Tracks random-walking across the fences, step-major (every track's step 1, then step 2, ...). Each input
 * has its own date, so an event's (actiontype, fence, track, date) names the input that caused it.
 */
function positions(rand: () => number, tracks: number, steps: number): string {
  const at = Array.from({ length: tracks }, () => [rand() * 40 - 5, rand() * 40 - 5]);
  const lines: string[] = [];
  const t0 = Date.UTC(2026, 0, 1);
  for (let s = 0; s < steps; s++) {
    for (let k = 0; k < tracks; k++) {
      const p = at[k]!;
      // Mostly small steps (enter/exit), now and then a jump over a fence (cross).
      const d = rand() < 0.05 ? 15 : 2.5;
      p[0] = Math.min(40, Math.max(-10, p[0]! + (rand() * 2 - 1) * d));
      p[1] = Math.min(40, Math.max(-10, p[1]! + (rand() * 2 - 1) * d));
      const date = new Date(t0 + lines.length * 1000).toISOString();
      lines.push(JSON.stringify({
        metadata: { actiontype: "update", targettype: "vehicle", date },
        data: { type: "Feature", properties: { id: `t${k}` }, geometry: { type: "Point", coordinates: [p[0], p[1]] } },
      }));
    }
  }
  return lines.join("\n") + "\n";
}

/** A file -> geofence (SQLite state) -> file broker in its own folder (own input copy, offset file and state). */
function setup(root: string, name: string, input: string, opts: { count: number; maxInFlight: number }): { cfg: string; dir: string } {
  const dir = join(root, name);
  mkdirSync(dir, { recursive: true });
  writeFileSync(join(dir, "input.ndjson"), input);
  writeFileSync(join(dir, "fences.geojson"), JSON.stringify(FENCES));
  const cfg = join(dir, "geowatch.yaml");
  writeFileSync(
    cfg,
    [
      "brokers:",
      "  - name: fence",
      `    count: ${opts.count}`,
      `    max_in_flight: ${opts.maxInFlight}`,
      "    sleep_period: 0.05",
      "    consumers: [{ backend: file, path: '${GEOWATCH_CONFIG_DIR}/input.ndjson', codec: json }]",
      "    stages:",
      "      - stage: geofence",
      "        fences: '${GEOWATCH_CONFIG_DIR}/fences.geojson'",
      "        track_id: data.properties.id",
      "        events: [enter, exit, cross]",
      "        state: { sqlite: '${GEOWATCH_CONFIG_DIR}/state/geofence.db' }",
      "    producers: [{ backend: file, path: '${GEOWATCH_CONFIG_DIR}/events.ndjson', codec: json }]",
    ].join("\n"),
  );
  return { cfg, dir };
}

const runUntilIdle = (cfg: string) => {
  const r = spawnSync(process.execPath, [BIN, "run", cfg, "--until-idle", "--no-status"], { env, encoding: "utf8", timeout: 60_000 });
  expect(r.status, r.stderr).toBe(0);
};

const lines = (dir: string): string[] =>
  existsSync(join(dir, "events.ndjson")) ? readFileSync(join(dir, "events.ndjson"), "utf8").split("\n").filter(Boolean) : [];

/** Distinct events as `actiontype fence track date`. */
const eventSet = (dir: string): Set<string> =>
  new Set(lines(dir).map((l) => {
    const m = (JSON.parse(l) as { metadata: Record<string, unknown> }).metadata;
    return `${String(m.actiontype)} ${String(m.fence)} ${String(m.track)} ${String(m.date)}`;
  }));

/** Whether the consumer committed the whole input. */
const consumedAll = (dir: string): boolean => {
  const off = join(dir, "input.ndjson.offset");
  return existsSync(off) && (JSON.parse(readFileSync(off, "utf8")) as { offset: number }).offset === statSync(join(dir, "input.ndjson")).size;
};

const diff = (want: Set<string>, got: Set<string>) => ({
  missing: [...want].filter((e) => !got.has(e)).slice(0, 10),
  invented: [...got].filter((e) => !want.has(e)).slice(0, 10),
});

describe("geofence state across crashes (file -> geofence with SQLite state -> file)", () => {
  const root = mkdtempSync(join(tmpdir(), "geowatch-geofence-crash-"));
  afterAll(() => rmSync(root, { recursive: true, force: true }));

  it("a replay of input the state already covers invents no events (offset file deleted between two runs)", () => {
    const input = positions(rng(7), 20, 40);
    const { cfg, dir } = setup(root, "replay", input, { count: 25, maxInFlight: 100 });
    runUntilIdle(cfg);
    const first = eventSet(dir);
    expect(first.size).toBeGreaterThan(0);
    expect(consumedAll(dir)).toBe(true);

    unlinkSync(join(dir, "input.ndjson.offset"));
    runUntilIdle(cfg);
    expect(consumedAll(dir)).toBe(true);
    const second = eventSet(dir);
    expect(diff(first, second)).toEqual({ missing: [], invented: [] });
  });

  it("after SIGKILLs at seeded random moments, the set of events equals an uninterrupted run's", async () => {
    const seed = process.env.GEOWATCH_SEED !== undefined ? Number(process.env.GEOWATCH_SEED) : Math.floor(Math.random() * 2 ** 31);
    console.log(`[geofence-crash] seed ${seed} (set GEOWATCH_SEED=${seed} to repeat)`);
    const rand = rng(seed);
    const input = positions(rand, 40, 500);
    // Small batches and many in flight: batches are processed before earlier ones are delivered.
    const opts = { count: 20, maxInFlight: 400 };

    const ref = setup(root, "uninterrupted", input, opts);
    runUntilIdle(ref.cfg);
    expect(consumedAll(ref.dir)).toBe(true);
    const want = eventSet(ref.dir);
    expect(want.size).toBeGreaterThan(100);

    const killed = setup(root, "killed", input, opts);
    // Kill points spread over the stream whatever the machine's speed: once the output holds a seeded share
    // of the events (or, when a replay is still below it, once this run delivered anything), plus 0-50 ms.
    const kills = 4 + Math.floor(rand() * 3);
    const targets = Array.from({ length: kills }, () => Math.floor(want.size * (0.05 + 0.8 * rand()))).sort((a, b) => a - b);
    const killedAt: number[] = [];
    for (const target of targets) {
      if (consumedAll(killed.dir)) break;
      const child = spawn(process.execPath, [BIN, "run", killed.cfg, "--no-status"], { env, stdio: ["ignore", "ignore", "pipe"] });
      let stderr = "";
      child.stderr.on("data", (d: Buffer) => (stderr += d.toString()));
      const exited = new Promise((r) => child.once("exit", r));
      const goal = Math.max(target, lines(killed.dir).length + 1);
      const deadline = Date.now() + 20_000;
      while (lines(killed.dir).length < goal && child.exitCode === null && Date.now() < deadline) await new Promise((r) => setTimeout(r, 5));
      await new Promise((r) => setTimeout(r, Math.floor(rand() * 50)));
      child.kill("SIGKILL");
      await exited;
      killedAt.push(lines(killed.dir).length);
      expect(stderr).not.toMatch(/"level":"error"/);
    }
    expect(consumedAll(killed.dir), "the kills came too late: the input was consumed before the last one").toBe(false);

    for (let attempt = 0; attempt < 3 && !consumedAll(killed.dir); attempt++) runUntilIdle(killed.cfg);
    expect(consumedAll(killed.dir)).toBe(true);
    const got = eventSet(killed.dir);
    console.log(
      `[geofence-crash] seed ${seed}: ${want.size} events uninterrupted; ${killedAt.length} SIGKILLs (event lines at each: ${killedAt.join(", ")}); ` +
        `${got.size} distinct events after restarts, ${lines(killed.dir).length - got.size} duplicates`,
    );
    expect(diff(want, got), `seed ${seed}`).toEqual({ missing: [], invented: [] });
    expect(got.size).toBe(want.size);
  }, 90_000);
});
