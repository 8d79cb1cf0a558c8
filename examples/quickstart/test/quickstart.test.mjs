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
      expect.stringMatching(/data\.geometry\.coordinates: a position has 2 or 3 numbers, got 1/),
      expect.stringMatching(/invalid JSON/),
      expect.stringMatching(/ring is not closed/),
    ]);
    const report = node(["report.mjs"]);
    expect(report.status, report.stderr).toBe(0);
    expect(report.stdout).toContain("config   examples/quickstart/geowatch.yaml");
    expect(report.stdout).toContain(`events   ${events.length} geofence events: ${enter.features.length} enter, ${exit.features.length} exit`);
    expect(report.stdout).toMatch(new RegExp(`examples/quickstart/out/results/enter.geojson +${enter.features.length} features`));
    expect(report.stdout).toContain("3 dead letters in examples/quickstart/out/dead-letter.ndjson");

    // A second run resumes from the committed offset and the persisted geofence state: nothing new.
    const again = node([bin, "run", "geowatch.yaml", "--until-idle"]);
    expect(again.status).toBe(0);
    expect(again.stderr).toMatch(/done: 0 received/);
    expect(existsSync(join(here, "out", "geofence-state.db"))).toBe(true);
  });

  it("scripts/quickstart.sh prints a short summary (config, counts, files, what next) and keeps the tool output in a log", () => {
    const root = join(here, "..", "..");
    const r = spawnSync("bash", [join(root, "scripts", "quickstart.sh")], {
      cwd: root,
      encoding: "utf8",
      // The build ran before the tests; this checks what the script prints after it.
      env: { ...process.env, GEOWATCH_QUICKSTART_NO_BUILD: "1", GEOWATCH_LOG_LEVEL: "warn" },
      timeout: 120_000,
    });
    expect(r.status, r.stdout + r.stderr).toBe(0);
    const out = r.stdout.trim().split("\n");
    // No raw event lines or tool noise: one short screen.
    expect(out.length).toBeLessThan(30);
    expect(out.filter((l) => l.trim().startsWith("{"))).toEqual([]);
    expect(r.stderr).toBe("");

    const lines = (p) => readFileSync(join(here, "out", p), "utf8").trim().split("\n");
    const positions = lines("positions.ndjson").length;
    const events = lines("events.ndjson").length;
    const enter = JSON.parse(readFileSync(join(here, "out", "results", "enter.geojson"), "utf8")).features.length;
    const exit = JSON.parse(readFileSync(join(here, "out", "results", "exit.geojson"), "utf8")).features.length;
    expect(events).toBe(enter + exit);
    expect(events).toBeGreaterThan(100);
    expect(r.stdout).toContain("running examples/quickstart/geowatch.yaml");
    expect(r.stdout).toContain("config   examples/quickstart/geowatch.yaml");
    expect(r.stdout).toContain(`input    ${positions} positions`);
    expect(r.stdout).toContain(`run: ${positions} received, ${events * 2} sent, ${positions} acknowledged, 3 dead-lettered`);
    expect(r.stdout).toContain(`events   ${events} geofence events: ${enter} enter, ${exit} exit`);
    expect(r.stdout).toContain("files    3 written:");
    expect(r.stdout).toMatch(new RegExp(`examples/quickstart/out/results/enter.geojson +${enter} features`));
    expect(r.stdout).toMatch(new RegExp(`examples/quickstart/out/results/exit.geojson +${exit} features`));
    expect(r.stdout).toMatch(new RegExp(`examples/quickstart/out/events.ndjson +${events} events`));
    expect(r.stdout).toContain("dead     3 dead letters in examples/quickstart/out/dead-letter.ndjson");
    expect(r.stdout).toMatch(/- invalid GeoJSON: data\.geometry\.coordinates: a position has 2 or 3 numbers, got 1\n/);
    expect(r.stdout).toMatch(/next +open examples\/quickstart\/out\/results\/enter\.geojson/);
    expect(r.stdout).toContain("examples/quickstart/out/quickstart.log");

    // The console producer's lines went to the log, one per event.
    const log = lines("quickstart.log");
    expect(log.filter((l) => l.startsWith('{"metadata":')).length).toBe(events);
  });
});
