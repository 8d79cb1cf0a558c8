import { spawnSync } from "node:child_process";
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, describe, expect, it } from "vitest";

const BIN = new URL("../bin/geowatch.js", import.meta.url).pathname;
const run = (args: string[], cwd = process.cwd(), env: Record<string, string> = {}) =>
  spawnSync(process.execPath, [BIN, ...args], { cwd, encoding: "utf8", env: { ...process.env, GEOWATCH_LOG_LEVEL: "warn", ...env }, timeout: 60_000 });

describe("geowatch CLI", () => {
  const dir = mkdtempSync(join(tmpdir(), "geowatch-cli-"));
  afterAll(() => rmSync(dir, { recursive: true, force: true }));

  it("--help and --version exit 0; no command and unknown commands exit 2", () => {
    const help = run(["--help"]);
    expect(help.status).toBe(0);
    expect(help.stdout).toMatch(/geowatch run <config/);
    expect(run(["--version"]).stdout.trim()).toMatch(/^\d+\.\d+\.\d+$/);
    expect(run([]).status).toBe(2);
    const bad = run(["frobnicate"]);
    expect(bad.status).toBe(2);
    expect(bad.stderr).toMatch(/unknown command "frobnicate"/);
  });

  it("validate lists every problem with its path and exits 2", () => {
    const cfg = join(dir, "bad.yaml");
    writeFileSync(
      cfg,
      [
        "brokers:",
        "  - name: b",
        "    consumers:",
        "      - backend: file",
        "        codec: geojsonx",
        "      - backend: no-such-backend",
        "    producers:",
        "      - backend: console",
        "        colour: red",
        "    stores_out:",
        "      - backend: console",
        "        key: x",
      ].join("\n"),
    );
    const r = run(["validate", cfg]);
    expect(r.status).toBe(2);
    expect(r.stderr).toMatch(/brokers\[0\]\.consumers\[0\]\.codec: unknown codec "geojsonx"/);
    expect(r.stderr).toMatch(/brokers\[0\]\.consumers\[0\]\.path: required/);
    expect(r.stderr).toMatch(/brokers\[0\]\.consumers\[1\]\.backend: unknown backend "no-such-backend": no installed package provides it/);
    expect(r.stderr).toMatch(/brokers\[0\]\.producers\[0\]\.colour: unknown option \(known: stream, prefix\)/);
    expect(r.stderr).toMatch(/brokers\[0\]\.stores_out\[0\]\.backend: backend "console" cannot be a store/);
  });

  it("validate names the line and column of a YAML syntax error", () => {
    const cfg = join(dir, "syntax.yaml");
    writeFileSync(cfg, "brokers:\n  - name: [unclosed\n");
    const r = run(["validate", cfg]);
    expect(r.status).toBe(2);
    expect(r.stderr).toMatch(/line \d+, column \d+/);
  });

  it("validate accepts a good config and run --once moves messages", () => {
    const input = join(dir, "in.ndjson");
    writeFileSync(input, ['{"n":1}', '{"n":2}', "not json"].join("\n") + "\n");
    const cfg = join(dir, "good.yaml");
    writeFileSync(
      cfg,
      [
        "brokers:",
        "  - name: b",
        "    consumers: [{ backend: file, path: '${GEOWATCH_CONFIG_DIR}/in.ndjson', codec: json }]",
        "    producers: [{ backend: file, path: '${GEOWATCH_CONFIG_DIR}/out.ndjson', codec: json }]",
        "    dead_letter: { backend: file, path: '${GEOWATCH_CONFIG_DIR}/dead.ndjson' }",
      ].join("\n"),
    );
    expect(run(["validate", cfg]).status).toBe(0);
    const r = run(["run", cfg, "--until-idle"]);
    expect(r.status, r.stderr).toBe(0);
    expect(r.stderr).toMatch(/3 received, 2 sent, 3 acknowledged, 1 dead-lettered/);
    expect(readFileSync(join(dir, "out.ndjson"), "utf8").trim().split("\n")).toEqual(['{"n":1}', '{"n":2}']);
    const dead = readFileSync(join(dir, "dead.ndjson"), "utf8").trim();
    expect(dead).toMatch(/invalid JSON/);
  });

  it("run exits 1 with a clear message when a backend cannot connect", () => {
    const cfg = join(dir, "noconnect.yaml");
    writeFileSync(cfg, ["brokers:", "  - name: b", "    max_tries: 1", "    consumers: [{ backend: queue, path: /nonexistent-dir/x/q.db, queue: q }]"].join("\n"));
    const r = run(["run", cfg, "--once"]);
    expect(r.status).toBe(1);
    expect(r.stderr).toMatch(/\[geowatch\]/);
  });

  it("validate and run stop with a clear message on a fence file that does not parse", () => {
    writeFileSync(join(dir, "fences-bad.geojson"), '{"type":"FeatureCollection","features":[{"type":"Feature"');
    const cfg = join(dir, "fence.yaml");
    writeFileSync(
      cfg,
      [
        "brokers:",
        "  - name: b",
        "    consumers: [{ backend: memory, topic: t, codec: geojson }]",
        "    stages:",
        "      - { stage: geofence, fences: '${GEOWATCH_CONFIG_DIR}/fences-bad.geojson', track_id: data.properties.id }",
        "      - { stage: geofence, fence: oops }",
      ].join("\n"),
    );
    for (const cmd of ["validate", "run"]) {
      const r = run([cmd, cfg]);
      expect(r.status).toBe(2);
      expect(r.stderr).toMatch(/brokers\[0\]\.stages\[0\]: .*fences-bad\.geojson/);
      expect(r.stderr).toMatch(/brokers\[0\]\.stages\[1\]/);
    }
  });

  it("spatial stages from config (snake_case names) filter and route by fence", () => {
    writeFileSync(
      join(dir, "harbour.geojson"),
      JSON.stringify({ type: "FeatureCollection", features: [{ type: "Feature", id: "harbour", properties: {}, geometry: { type: "Polygon", coordinates: [[[4, 52], [5, 52], [5, 53], [4, 53], [4, 52]]] } }] }),
    );
    const cfg = join(dir, "spatial.yaml");
    writeFileSync(
      cfg,
      [
        "brokers:",
        "  - name: ships",
        "    consumers: [{ backend: memory, topic: t, codec: geojson }]",
        "    stages:",
        "      - { stage: bbox_filter, bbox: [0, 50, 10, 55] }",
        "      - { stage: route_by_fence, fences: '${GEOWATCH_CONFIG_DIR}/harbour.geojson', routes: { harbour: [alerts], none: [archive] } }",
        "    producers:",
        "      - { name: alerts, backend: console, codec: json }",
        "      - { name: archive, backend: console, codec: json }",
      ].join("\n"),
    );
    const pt = (x: number, y: number, id: string) => ({ type: "Feature", properties: { id }, geometry: { type: "Point", coordinates: [x, y] } });
    const tests = join(dir, "spatial.tests.yaml");
    writeFileSync(
      tests,
      JSON.stringify({
        tests: [
          {
            name: "in the harbour to alerts, elsewhere in the box to archive, outside the box dropped, bad coordinates dead",
            input: [pt(4.5, 52.5, "in"), pt(8, 51, "box"), pt(30, 10, "far"), { type: "Feature", properties: { id: "bad" }, geometry: { type: "Point", coordinates: [4.5] } }],
            expect: {
              alerts: { count: 1, contains: [{ properties: { id: "in" } }] },
              archive: { count: 1, contains: [{ properties: { id: "box" } }] },
              "dead-letter": { count: 1 },
            },
          },
        ],
      }),
    );
    const r = run(["test", cfg, tests]);
    expect(r.stdout, r.stderr).toMatch(/1 passed, 0 failed/);
    expect(r.status).toBe(0);
  });

  it("schema prints JSON Schema", () => {
    const r = run(["schema"]);
    expect(r.status).toBe(0);
    expect(JSON.parse(r.stdout).properties.brokers).toBeTruthy();
  });

  it("test runs config unit tests without servers", () => {
    const cfg = join(dir, "unit.yaml");
    writeFileSync(
      cfg,
      [
        "brokers:",
        "  - name: layers",
        "    consumers: [{ backend: kafka, topic: layers, codec: json }]",
        "    filter_metadata: { actiontype: [create] }",
        "    producers: [{ name: alerts, backend: sns, topic_arn: 'arn:x', codec: json }]",
      ].join("\n"),
    );
    const tests = join(dir, "unit.tests.yaml");
    writeFileSync(
      tests,
      [
        "tests:",
        "  - name: only creates pass",
        "    input:",
        "      - { metadata: { actiontype: create }, data: 1 }",
        "      - { metadata: { actiontype: delete }, data: 2 }",
        "      - '{broken'",
        "    expect:",
        "      alerts: { count: 1, contains: [{ data: 1 }] }",
        "      dead-letter: { count: 1 }",
        "  - name: a failing expectation fails",
        "    input: [{ metadata: { actiontype: create }, data: 3 }]",
        "    expect:",
        "      alerts: { count: 2 }",
      ].join("\n"),
    );
    const r = run(["test", cfg, tests]);
    expect(r.stdout).toMatch(/ok {3}only creates pass/);
    expect(r.stdout).toMatch(/FAIL a failing expectation fails\n\s+alerts: expected 2 message\(s\), got 1/);
    expect(r.stdout).toMatch(/1 passed, 1 failed/);
    expect(r.status).toBe(1);
  });
});
