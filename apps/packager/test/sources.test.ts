// Sources from GeoWatch stores (issue 11 part 3): a request names a configured source and a key; the packager
// reads it through the store's `read` and packages the rows like DataStore rows. The file store, and the WFS
// reader against the real MapServer (.ci/servers/mapserver.sh): read back with GDAL's ogrinfo and Python.
import { execFileSync } from "node:child_process";
import { mkdirSync, rmSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { requireEnv } from "@geowatch/testkit";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { startPackager } from "../src/app.js";
import type { RunningPackager } from "../src/app.js";
import { mailsTo, post, py, testConfig, waitFor } from "./helpers.js";

const SECRET = "test-secret-0123456789";
let app: RunningPackager;
let layers = "";

const mapserverUrl = () => requireEnv("GEOWATCH_MAPSERVER_URL", "Start MapServer: bash .ci/servers/mapserver.sh start, then source .servers/env/mapserver.env");

/** A FeatureCollection of n features: points, a line and a polygon, awkward property text. */
function collection(n: number) {
  return {
    type: "FeatureCollection",
    features: Array.from({ length: n }, (_, i) => ({
      type: "Feature",
      id: `f${i}`,
      properties: { num: i, name: i % 5 === 0 ? `comma, "quote" ü ${i}` : `site ${i}`, kind: i % 2 ? "odd" : "even" },
      geometry:
        i === 1
          ? { type: "LineString", coordinates: [[10, 50], [11, 51]] }
          : i === 2
            ? { type: "Polygon", coordinates: [[[0, 0], [1, 0], [1, 1], [0, 0]]] }
            : { type: "Point", coordinates: [-170 + (i % 340), -45 + (i % 90)] },
    })),
  };
}

beforeAll(async () => {
  const config = testConfig({
    sources: {
      layers: { backend: "file", dir: "PLACEHOLDER" },
      mapserver: { backend: "wfs", url: mapserverUrl(), allow_private: true, version: "1.1.0" },
    },
  });
  layers = join(config.dataDir, "layers");
  mkdirSync(layers, { recursive: true });
  config.sources.layers = { backend: "file", dir: layers };
  writeFileSync(join(layers, "sites.geojson"), JSON.stringify(collection(250)));
  writeFileSync(join(layers, "rows.ndjson"), Array.from({ length: 40 }, (_, i) => JSON.stringify({ n: i, label: `row ${i}` })).join("\n") + "\n");
  app = await startPackager(config);
});
afterAll(async () => {
  await app?.close();
  if (app) rmSync(app.service.config.dataDir, { recursive: true, force: true });
});

async function packaged(body: Record<string, unknown>): Promise<string> {
  const to = `src-${Date.now()}-${Math.floor(Math.random() * 1e6)}@example.org`;
  const r = await post(app.url, "/package_source", { secret: SECRET, email: to, ...body });
  expect(r.body, JSON.stringify(r.body)).toMatchObject({ success: true });
  const id = String(r.body.job_id);
  const job = await waitFor("job finished", async () => {
    const j = (await post(app.url, "/job_status", { secret: SECRET, job_id: id })).body.job as { state: string; error: string | null };
    return j.state === "done" || j.state === "failed" ? j : undefined;
  }, 60_000);
  expect(job).toMatchObject({ state: "done" });
  const mail = await waitFor("mail", () => mailsTo(to)[0]);
  const link = /https?:\/\/\S+\/download\/\S+/.exec(mail.body)![0];
  const zip = join(app.service.config.dataDir, `${id}.zip`);
  writeFileSync(zip, Buffer.from(await (await fetch(link)).arrayBuffer()));
  return zip;
}

/** The ZIP's one entry, extracted by Python's zipfile (a GeoPackage is opened as a file, not inside the ZIP). */
function layerFile(zip: string): string {
  const dir = `${zip}.d`;
  return py<string>("import json, os, sys, zipfile\nz = zipfile.ZipFile(sys.argv[1])\nz.extractall(sys.argv[2])\nprint(json.dumps(os.path.join(sys.argv[2], z.namelist()[0])))", zip, dir);
}

/** ogrinfo (GDAL) on the ZIP's layer: feature count and geometry type, from its summary. */
function ogr(zip: string): { count: number; types: string[] } {
  const out = execFileSync("ogrinfo", ["-al", "-so", layerFile(zip)], { encoding: "utf8" }).toString();
  return { count: Number(/Feature Count: (\d+)/.exec(out)?.[1]), types: [...out.matchAll(/^Geometry: (.+)$/gm)].map((m) => m[1]!.trim()) };
}

describe("sources from GeoWatch stores", () => {
  it("a file store's GeoJSON layer to GeoPackage: every feature with its geometry, read by GDAL", async () => {
    const zip = await packaged({ source: "layers", resource_id: "sites.geojson", format: "gpkg" });
    expect(ogr(zip)).toEqual({ count: 250, types: ["Unknown (any)"] });
    const rows = execFileSync("ogrinfo", ["-al", "-q", "-where", "num = 5", layerFile(zip)], { encoding: "utf8" }).toString();
    expect(rows).toContain('comma, "quote" ü 5');
    expect(rows).toMatch(/POINT \(-165 -40\)/);
    const line = execFileSync("ogrinfo", ["-al", "-q", "-where", "num = 1", layerFile(zip)], { encoding: "utf8" }).toString();
    expect(line).toMatch(/LINESTRING \(10 50,11 51\)/);
  });

  it("newline-delimited JSON rows to CSV, read by Python's csv", async () => {
    const zip = await packaged({ source: "layers", resource_id: "rows.ndjson", format: "csv" });
    const rows = py<string[][]>("import csv, io, json, sys, zipfile\nz = zipfile.ZipFile(sys.argv[1])\nprint(json.dumps(list(csv.reader(io.StringIO(z.read(z.namelist()[0]).decode(), newline='')))))", zip);
    expect(rows[0]).toEqual(["n", "label"]);
    expect(rows).toHaveLength(41);
    expect(rows[40]).toEqual(["39", "row 39"]);
  });

  it("the WFS reader on MapServer: the 3000-point layer to GeoJSON, read by GDAL", async () => {
    const zip = await packaged({ source: "mapserver", resource_id: "points", format: "geojson" });
    expect(ogr(zip)).toEqual({ count: 3000, types: ["Point"] });
  });

  it("an unknown source or key is refused or fails with the reason", async () => {
    const r = await post(app.url, "/package_source", { secret: SECRET, email: "x@example.org", source: "nope", resource_id: "a" });
    expect(r.status).toBe(400);
    expect(String(r.body.msg)).toMatch(/unknown source "nope".*layers, mapserver/);
    const climb = await post(app.url, "/package_source", { secret: SECRET, email: "x@example.org", source: "layers", resource_id: "../../etc/passwd" });
    const id = String(climb.body.job_id);
    const job = await waitFor("failed", async () => {
      const j = (await post(app.url, "/job_status", { secret: SECRET, job_id: id })).body.job as { state: string; error: string | null };
      return j.state === "failed" ? j : undefined;
    });
    expect(job.error).toMatch(/climbs out of the store directory/);
  });
});
