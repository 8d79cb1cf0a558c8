/**
 * Reliability (issue 9): `geowatch run` moves 50,000 feature edits (creates, updates, deletes of 50 ids)
 * from a file channel into QGIS Server through WFS-T, is SIGKILLed twice at seeded random points, and is
 * run again until idle. The layer, read back through the reader (readStore: GetFeature with paging), must
 * hold every live id exactly once with its last values, and none of the deleted ones. The edits are
 * idempotent by the `uid` property (id_property): each batch looks its ids up first, so what a killed run
 * wrote and the restart sends again converges.
 */
import { spawn, spawnSync } from "node:child_process";
import { existsSync, mkdtempSync, readFileSync, rmSync, statSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { afterAll, describe, expect, it } from "vitest";
import { payloadText } from "@geowatch/core";
import { seededRandom } from "@geowatch/testkit";
import { readStore } from "../src/reader.js";
import { emptyLayer, qgisUrl } from "./writer-helpers.js";

const BIN = fileURLToPath(new URL("../../../apps/broker/bin/geowatch.js", import.meta.url));
/** The CLI resolves `backend: wfs` from here (apps/broker has @geowatch/wfs as a devDependency). */
const APP_DIR = fileURLToPath(new URL("../../../apps/broker", import.meta.url));
const LAYER = "system";
const EDITS = 50_000;
/**
 * QGIS Server 3.22 spends 70 ms or more on each WFS-T action (one Insert per feature; it refuses several), one
 * request at a time, so the ids are few and the batches large: the edits of one id in a batch fold into one
 * action, at most 50 actions per 10,000-edit Transaction.
 */
const IDS = 50;

interface State { name: string; value: number; count: number; flag: boolean; updated: string; lon: number; lat: number }

/** Seeded edits: a create for an id not alive, else mostly updates of some properties (sometimes the point), some deletes. */
function edits(rand: () => number): { lines: string; live: Map<string, State>; counts: Record<string, number> } {
  const live = new Map<string, State>();
  const counts = { create: 0, update: 0, delete: 0 };
  const out: string[] = [];
  const t0 = Date.UTC(2026, 0, 1);
  const round = (x: number) => Math.round(x * 1e5) / 1e5;
  for (let i = 0; i < EDITS; i++) {
    const uid = `u${Math.floor(rand() * IDS)}`;
    const cur = live.get(uid);
    const updated = new Date(t0 + i * 1000).toISOString().replace(".000Z", "Z");
    let actiontype: "create" | "update" | "delete";
    let properties: Record<string, unknown>;
    let geometry: unknown = null;
    if (!cur) {
      actiontype = "create";
      const s: State = { name: `n${i} ü&<`, value: round(rand() * 1000 - 500), count: i, flag: rand() < 0.5, updated, lon: round(rand() * 360 - 180), lat: round(rand() * 170 - 85) };
      live.set(uid, s);
      properties = { uid, name: s.name, value: s.value, count: s.count, flag: s.flag, updated: s.updated };
      geometry = { type: "Point", coordinates: [s.lon, s.lat] };
    } else if (rand() < 0.12) {
      actiontype = "delete";
      live.delete(uid);
      properties = { uid };
    } else {
      actiontype = "update";
      properties = { uid, count: i, updated };
      cur.count = i;
      cur.updated = updated;
      if (rand() < 0.5) properties.value = cur.value = round(rand() * 10);
      if (rand() < 0.3) properties.flag = cur.flag = !cur.flag;
      if (rand() < 0.3) {
        cur.lon = round(rand() * 360 - 180);
        cur.lat = round(rand() * 170 - 85);
        geometry = { type: "Point", coordinates: [cur.lon, cur.lat] };
      }
    }
    counts[actiontype]++;
    out.push(JSON.stringify({ metadata: { actiontype, featuretype: LAYER, date: updated }, data: { type: "Feature", geometry, properties } }));
  }
  return { lines: out.join("\n") + "\n", live, counts };
}

describe("system: 50,000 feature edits into QGIS Server through WFS-T, SIGKILLed twice", () => {
  const dir = mkdtempSync(join(tmpdir(), "geowatch-wfs-system-"));
  afterAll(() => rmSync(dir, { recursive: true, force: true }));

  it("every live feature present once with its last values, deletes applied", async () => {
    const url = qgisUrl();
    await emptyLayer(LAYER);
    const seed = process.env.GEOWATCH_SEED !== undefined ? Number(process.env.GEOWATCH_SEED) : Math.floor(Math.random() * 2 ** 31);
    console.log(`[wfs-system] seed ${seed} (set GEOWATCH_SEED=${seed} to repeat)`);
    const rand = seededRandom(seed);
    const { lines, live, counts } = edits(rand);
    const input = join(dir, "edits.ndjson");
    writeFileSync(input, lines);
    const cfg = join(dir, "geowatch.yaml");
    writeFileSync(
      cfg,
      [
        "brokers:",
        "  - name: edits",
        "    count: 10000",
        "    timeout: 600",
        "    sleep_period: 0.05",
        `    consumers: [{ backend: file, path: '${input}', codec: json }]`,
        "    producers:",
        "      - backend: wfs",
        `        url: '${url}'`,
        "        allow_private: true",
        "        type_name: system",
        "        id_property: uid",
        "        srs_name: 'EPSG:4326'",
        "        axis_order: lonlat",
        "        nulls: omit",
        "        max_batch: 10000",
        "        timeout_ms: 300000",
        `    dead_letter: { backend: file, path: '${join(dir, "dead.ndjson")}' }`,
      ].join("\n"),
    );
    const size = statSync(input).size;
    const offset = () => (existsSync(`${input}.offset`) ? (JSON.parse(readFileSync(`${input}.offset`, "utf8")) as { offset: number }).offset : 0);
    const env = { ...process.env, GEOWATCH_LOG_LEVEL: "error" };
    const targets = [0.1 + 0.3 * rand(), 0.5 + 0.3 * rand()];
    const killedAt: number[] = [];
    for (const share of targets) {
      const child = spawn(process.execPath, [BIN, "run", cfg, "--no-status"], { cwd: APP_DIR, env, stdio: ["ignore", "ignore", "pipe"] });
      let stderr = "";
      child.stderr.on("data", (d: Buffer) => (stderr += d.toString()));
      const exited = new Promise((r) => child.once("exit", r));
      const deadline = Date.now() + 150_000;
      while (offset() < size * share && child.exitCode === null && Date.now() < deadline) await new Promise((r) => setTimeout(r, 20));
      // Past the committed offset a Transaction is usually in flight: kill somewhere inside it.
      await new Promise((r) => setTimeout(r, Math.floor(rand() * 400)));
      child.kill("SIGKILL");
      await exited;
      expect(child.exitCode, stderr).toBeNull();
      killedAt.push(offset());
    }
    expect(offset(), "the kills came too late: the input was consumed before the last one").toBeLessThan(size);
    const r = spawnSync(process.execPath, [BIN, "run", cfg, "--until-idle", "--no-status"], { cwd: APP_DIR, env, encoding: "utf8", timeout: 400_000 });
    expect(r.status, r.stderr).toBe(0);
    expect(offset()).toBe(size);
    expect(existsSync(join(dir, "dead.ndjson")) ? readFileSync(join(dir, "dead.ndjson"), "utf8") : "", "nothing dead-lettered").toBe("");

    const body = await readStore({ url, allowPrivate: true, version: "1.1.0", typeName: LAYER, pageSize: 5000 });
    expect(body).toBeDefined();
    const features = (JSON.parse(payloadText(body!)) as { features: Array<{ geometry: { coordinates: number[] } | null; properties: Record<string, unknown> }> }).features;
    const seen = new Map<string, number>();
    for (const f of features) seen.set(String(f.properties.uid), (seen.get(String(f.properties.uid)) ?? 0) + 1);
    const duplicated = [...seen].filter(([, n]) => n > 1).map(([k]) => k);
    const missing = [...live.keys()].filter((k) => !seen.has(k));
    const undeleted = [...seen.keys()].filter((k) => !live.has(k));
    console.log(
      `[wfs-system] seed ${seed}: ${EDITS} edits (${counts.create} creates, ${counts.update} updates, ${counts.delete} deletes); killed at offsets ${killedAt.join(", ")} of ${size}; ` +
        `${features.length} features read back, ${live.size} expected; duplicated ${duplicated.length}, missing ${missing.length}, not deleted ${undeleted.length}`,
    );
    expect({ duplicated: duplicated.slice(0, 5), missing: missing.slice(0, 5), undeleted: undeleted.slice(0, 5) }).toEqual({ duplicated: [], missing: [], undeleted: [] });
    expect(features.length).toBe(live.size);
    const wrong: string[] = [];
    for (const f of features) {
      const uid = String(f.properties.uid);
      const s = live.get(uid)!;
      const p = f.properties;
      const got = { name: p.name, value: Number(p.value), count: Number(p.count), flag: p.flag === true || p.flag === "true", updated: String(p.updated).replace(/\.000$/, "").replace(/Z$/, ""), lon: f.geometry?.coordinates[0], lat: f.geometry?.coordinates[1] };
      const want = { name: s.name, value: s.value, count: s.count, flag: s.flag, updated: s.updated.replace(/Z$/, ""), lon: s.lon, lat: s.lat };
      if (JSON.stringify(got) !== JSON.stringify(want)) wrong.push(`${uid}: got ${JSON.stringify(got)}, want ${JSON.stringify(want)}`);
    }
    expect(wrong.slice(0, 5), `${wrong.length} features with wrong values`).toEqual([]);
  }, 600_000);
});
