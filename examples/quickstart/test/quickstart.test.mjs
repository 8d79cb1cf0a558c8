import { spawnSync } from "node:child_process";
import { existsSync, readFileSync } from "node:fs";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";
import { describe, expect, it } from "vitest";

const here = join(dirname(fileURLToPath(import.meta.url)), "..");
const bin = join(here, "..", "..", "apps", "broker", "bin", "geowatch.js");
const node = (args) => spawnSync(process.execPath, args, { cwd: here, encoding: "utf8", env: { ...process.env, GEOWATCH_LOG_LEVEL: "warn" }, timeout: 120_000 });

describe("quickstart", () => {
  it("runs on the embedded default: geofence events in GeoJSON stores, malformed input dead-lettered, nothing lost", () => {
    expect(node(["prepare.mjs"]).status).toBe(0);
    const input = readFileSync(join(here, "out", "positions.ndjson"), "utf8").trim().split("\n");
    const started = Date.now();
    const r = node([bin, "run", "geowatch.yaml", "--until-idle"]);
    expect(r.status, r.stderr).toBe(0);
    expect(Date.now() - started).toBeLessThan(60_000);
    expect(r.stderr).toMatch(new RegExp(`done: ${input.length} received, \\d+ sent, ${input.length} acknowledged, 3 dead-lettered`));
    const enter = JSON.parse(readFileSync(join(here, "out", "results", "enter.geojson"), "utf8"));
    const exit = JSON.parse(readFileSync(join(here, "out", "results", "exit.geojson"), "utf8"));
    expect(enter.type).toBe("FeatureCollection");
    expect(enter.features.length).toBeGreaterThan(50);
    expect(exit.features.length).toBeGreaterThan(50);
    const events = readFileSync(join(here, "out", "events.ndjson"), "utf8").trim().split("\n").map((l) => JSON.parse(l));
    expect(events.length).toBe(enter.features.length + exit.features.length);
    for (const e of events) {
      expect(["enter", "exit"]).toContain(e.metadata.actiontype);
      expect(e.metadata.fence).toMatch(/^[A-Z]{3}$/);
    }
    // The console got every event too.
    expect(r.stdout.trim().split("\n")).toHaveLength(events.length);
    const dead = readFileSync(join(here, "out", "dead-letter.ndjson"), "utf8").trim().split("\n").map((l) => JSON.parse(l));
    expect(dead.map((d) => (typeof d === "string" ? JSON.parse(d) : d).reason)).toEqual([
      expect.stringMatching(/latitude 123.4 is outside \[-90, 90\]/),
      expect.stringMatching(/invalid JSON/),
      expect.stringMatching(/ring is not closed/),
    ]);
    const report = node(["report.mjs"]);
    expect(report.stdout).toMatch(/examples\/quickstart\/out\/results\/enter.geojson: a FeatureCollection of \d+ "enter" events/);

    // A second run resumes from the committed offset and the persisted geofence state: nothing new.
    const again = node([bin, "run", "geowatch.yaml", "--until-idle"]);
    expect(again.status).toBe(0);
    expect(again.stderr).toMatch(/done: 0 received/);
    expect(existsSync(join(here, "out", "geofence-state.db"))).toBe(true);
  });
});
