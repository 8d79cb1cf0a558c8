/**
 * The gml codec through the real CLI (`geowatch run --until-idle`): GeoJSON features from a file channel
 * into a file store as one GML 3.1.1 document (the runtime resolves `codec: { name: gml, options }` from
 * this package), GDAL reads that document, and a second run reads the key back (`stores_in`, the codec's
 * unpack) into GeoJSON lines equal to the input. Bad options are listed by `geowatch validate` with paths.
 */
import { execFileSync, spawn } from "node:child_process";
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";
import { afterAll, describe, expect, it } from "vitest";
import type { Feature } from "../src/gml.js";

const ROOT = join(dirname(fileURLToPath(import.meta.url)), "../../..");
const APP_DIR = join(ROOT, "apps/broker");
const BIN = join(APP_DIR, "bin/geowatch.js");
const dir = mkdtempSync(join(tmpdir(), "gw-gml-cli-"));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

function cli(args: string[], timeoutMs = 60_000): Promise<{ code: number | null; out: string }> {
  return new Promise((resolve) => {
    const p = spawn(process.execPath, [BIN, ...args], { cwd: APP_DIR, stdio: ["ignore", "pipe", "pipe"] });
    let out = "";
    p.stdout.on("data", (d: Buffer) => (out += d.toString()));
    p.stderr.on("data", (d: Buffer) => (out += d.toString()));
    const t = setTimeout(() => p.kill("SIGKILL"), timeoutMs);
    p.once("exit", (code) => {
      clearTimeout(t);
      resolve({ code, out });
    });
  });
}

const N = 300;
const features: Feature[] = Array.from({ length: N }, (_, i) => ({
  type: "Feature",
  id: `pt.${i}`,
  geometry:
    i % 3 === 0
      ? { type: "Point", coordinates: [i / 10, -i / 20] }
      : i % 3 === 1
        ? { type: "LineString", coordinates: [[0, 0], [i, i / 2]] }
        : { type: "Polygon", coordinates: [[[0, 0], [1, 0], [1, 1], [0, 0]], [[0.2, 0.1], [0.3, 0.1], [0.3, 0.15], [0.2, 0.1]]] },
  properties: { seq: i, zero: 0, empty: "", no: false, none: null, name: `<${i}> & "${i}"` },
}));

const codec = { name: "gml", options: { version: "3.1.1", feature_type: "pts", namespace_prefix: "gw", namespace_uri: "urn:geowatch:test" } };

describe("gml codec in geowatch run", () => {
  it("file channel -> file store (one GML document) -> GDAL, and back through stores_in", async () => {
    const input = join(dir, "input.ndjson");
    writeFileSync(input, features.map((f) => JSON.stringify(f)).join("\n") + "\n");
    const store = join(dir, "store");
    const write = join(dir, "write.json");
    writeFileSync(write, JSON.stringify({
      brokers: [{
        name: "to-gml",
        consumers: [{ backend: "file", path: input, start_at: "beginning", codec: "geojson" }],
        stores_out: [{ name: "layer", backend: "file", dir: store, key: "layer.gml", codec, which: "all" }],
        dead_letter: { backend: "file", path: join(dir, "dead.ndjson") },
      }],
    }));
    const w = await cli(["run", write, "--until-idle", "--no-status"]);
    expect(w.code, w.out).toBe(0);
    const gml = readFileSync(join(store, "layer.gml"), "utf8");
    expect(gml).toContain('<wfs:FeatureCollection xmlns:wfs="http://www.opengis.net/wfs" xmlns:gml="http://www.opengis.net/gml"');
    expect(gml).toContain('<gml:featureMember><gw:pts gml:id="pt.0"><gw:geometry><gml:Point srsName="urn:ogc:def:crs:EPSG::4326"><gml:pos>0 0</gml:pos>');
    expect(gml).toContain('<gw:zero>0</gw:zero><gw:empty></gw:empty><gw:no>false</gw:no><gw:none xsi:nil="true"/><gw:name>&lt;0&gt; &amp; "0"</gw:name>');

    // An independent reader: GDAL counts every feature of the document the store holds.
    const copy = join(dir, "layer-copy.gml");
    writeFileSync(copy, gml);
    const gdal = JSON.parse(execFileSync("ogr2ogr", ["-f", "GeoJSON", "/vsistdout/", copy], { encoding: "utf8", timeout: 60_000 })) as { features: unknown[] };
    expect(gdal.features).toHaveLength(N);

    const output = join(dir, "output.ndjson");
    const read = join(dir, "read.json");
    writeFileSync(read, JSON.stringify({
      brokers: [{
        name: "from-gml",
        stores_in: [{ backend: "file", dir: store, key: "layer.gml", codec }],
        producers: [{ backend: "file", path: output, codec: "geojson" }],
      }],
    }));
    const r = await cli(["run", read, "--until-idle", "--no-status"]);
    expect(r.code, r.out).toBe(0);
    const back = readFileSync(output, "utf8").trim().split("\n").map((l) => JSON.parse(l) as Feature);
    expect(back).toHaveLength(N);
    // Compared through JSON: the first point's -0 (i = 0) cannot survive the JSON lines of either channel.
    expect(back).toEqual(JSON.parse(JSON.stringify(features)));
  }, 120_000);

  it("validate lists bad gml codec options with their paths", async () => {
    const bad = join(dir, "bad.json");
    writeFileSync(bad, JSON.stringify({
      brokers: [{
        name: "bad",
        consumers: [{ backend: "file", path: join(dir, "in.ndjson"), codec: { name: "gml", options: { version: "4", axis_order: "xy" } } }],
        producers: [{ backend: "console" }],
      }],
    }));
    const v = await cli(["validate", bad]);
    expect(v.code).not.toBe(0);
    expect(v.out).toMatch(/version/);
    expect(v.out).toMatch(/axis_order/);
  }, 60_000);
});
