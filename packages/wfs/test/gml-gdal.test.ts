/**
 * Round trips through an independent GML implementation: GDAL's ogr2ogr (Debian gdal-bin, declared by
 * .ci/servers/qgis.sh and mapserver.sh) reads the GML this package writes, and writes GML 2, 3.1.1 and
 * 3.2 (with each srsName form) that this package reads; both must give back the source GeoJSON.
 */
import { execFileSync, spawnSync } from "node:child_process";
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { decodeFeatures, encodeFeatureCollection, type Feature, type GmlVersion } from "../src/gml.js";

const FIXTURE = new URL("./fixtures/gml/mixed.geojson", import.meta.url);
const source = JSON.parse(readFileSync(FIXTURE, "utf8")) as { features: Feature[] };
let dir: string;

beforeAll(() => {
  const probe = spawnSync("ogr2ogr", ["--version"], { encoding: "utf8" });
  if (probe.status !== 0) throw new Error("ogr2ogr (GDAL) is not installed: apt-get install -y gdal-bin (declared by .ci/servers/qgis.sh)");
  dir = mkdtempSync(join(tmpdir(), "gw-gml-gdal-"));
});
afterAll(() => {
  if (dir) rmSync(dir, { recursive: true, force: true });
});

function ogr2ogr(args: string[]): void {
  execFileSync("ogr2ogr", args, { stdio: ["ignore", "ignore", "pipe"], timeout: 60_000 });
}

/** GDAL reads `gml` and answers GeoJSON (lon lat, RFC 7946). */
function gdalRead(gml: string, name: string): Feature[] {
  const file = join(dir, `${name}.gml`);
  writeFileSync(file, gml);
  const out = join(dir, `${name}.geojson`);
  ogr2ogr(["-f", "GeoJSON", out, file]);
  return (JSON.parse(readFileSync(out, "utf8")) as { features: Feature[] }).features;
}

/** Geometries compared at GDAL's printed precision (it writes up to 15 significant digits). */
function close(a: unknown, b: unknown): boolean {
  if (typeof a === "number" && typeof b === "number") return Math.abs(a - b) <= 1e-9 * Math.max(1, Math.abs(a));
  if (Array.isArray(a) && Array.isArray(b)) return a.length === b.length && a.every((x, i) => close(x, b[i]));
  if (a && b && typeof a === "object" && typeof b === "object") {
    const ka = Object.keys(a).sort();
    const kb = Object.keys(b).sort();
    return close(ka, kb) && ka.every((k) => (k === "type" ? (a as never)[k] === (b as never)[k] : close((a as never)[k], (b as never)[k])));
  }
  return a === b;
}

describe.each([
  ["3.1.1", undefined],
  ["3.2", undefined],
  ["3.2", "urn:ogc:def:crs:OGC:1.3:CRS84"],
  ["3.1.1", "EPSG:4326"],
] as [GmlVersion, string | undefined][])("GDAL reads the GML %s this package writes (srsName %s)", (version, srsName) => {
  it("every geometry and property comes back", () => {
    const gml = encodeFeatureCollection(source.features, {
      version, featureType: "mixed", namespacePrefix: "gw", namespaceUri: "urn:geowatch:features", ...(srsName ? { srsName } : {}),
    });
    const read = gdalRead(gml, `ours-${version}-${srsName ? "crs84" : "default"}`.replace(/[^\w.-]/g, "_"));
    expect(read).toHaveLength(source.features.length);
    for (let i = 0; i < read.length; i++) {
      const want = source.features[i]!;
      const got = read[i]!;
      expect(close(got.geometry, want.geometry), `feature ${want.id}: ${JSON.stringify(got.geometry)}`).toBe(true);
      expect(got.properties!.gml_id).toBe(want.id);
      for (const [k, v] of Object.entries(want.properties!)) {
        // GDAL reads an empty element as an unset field; every other value must be equal.
        if (v === "") expect(got.properties![k] ?? "").toBe("");
        else expect(got.properties![k], `${want.id}.${k}`).toEqual(v);
      }
    }
  });
});

describe.each([
  ["GML2", "GML 2 (gml:coordinates, outerBoundaryIs, fid)", []],
  ["GML3", "GML 3.1.1 (urn:ogc:def:crs:EPSG::4326, lat lon)", []],
  ["GML3.2", "GML 3.2 (URN)", []],
  ["GML3.2", "GML 3.2 (http://www.opengis.net/def/crs/EPSG/0/4326)", ["-dsco", "SRSNAME_FORMAT=OGC_URL"]],
  ["GML3", "GML 3.1.1 (short EPSG:4326, lon lat)", ["-dsco", "SRSNAME_FORMAT=SHORT"]],
] as [string, string, string[]][])("this package reads GDAL's %s", (format, what, extra) => {
  it(`${what}: every geometry and property comes back`, () => {
    const out = join(dir, `gdal-${format}-${extra.length}.gml`);
    ogr2ogr(["-f", "GML", out, FIXTURE.pathname, "-dsco", `FORMAT=${format}`, ...extra]);
    const text = readFileSync(out, "utf8");
    const read = decodeFeatures(text);
    expect(read).toHaveLength(source.features.length);
    for (let i = 0; i < read.length; i++) {
      const want = source.features[i]!;
      const got = read[i]!;
      expect(got.id).toBe(`mixed.${i}`);
      expect(close(got.geometry, want.geometry), `feature ${want.id}: ${JSON.stringify(got.geometry)}`).toBe(true);
      // GDAL writes the GeoJSON id as an `id` field.
      expect(got.properties).toEqual({ id: want.id, ...want.properties });
    }
  });
});
