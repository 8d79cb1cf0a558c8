/**
 * Documents captured from MapServer 8 (Debian mapserver-bin, the reader's test server, .ci/servers/mapserver.sh):
 * GetFeature of its points, lines and polygons layers as GML 2 (WFS 1.0.0), GML 3.1.1 (WFS 1.1.0, with the
 * short EPSG:4326 and with the URN srsName) and GML 3.2 (WFS 2.0.0), and the same features as MapServer's own
 * GeoJSON output. Decoding each GML document must give MapServer's GeoJSON: the same geometries in lon lat
 * whatever the axis order of the document, the same property values. Captured so the decoder is checked
 * against a server's real output (whitespace, MultiSurface for polygons, trailing spaces in posList, an
 * envelope in boundedBy) on every run; the reader's suites read the live server.
 */
import { readFileSync } from "node:fs";
import { describe, expect, it } from "vitest";
import { decodeFeatures, type Feature } from "../src/gml.js";

const dir = new URL("./fixtures/gml/mapserver/", import.meta.url);
const read = (name: string) => readFileSync(new URL(name, dir), "utf8");

/** MapServer writes a single polygon as a one-member MultiSurface in GML and as a Polygon in GeoJSON. */
function normalise(g: Feature["geometry"]): Feature["geometry"] {
  if (g?.type === "MultiPolygon" && g.coordinates.length === 1) return { type: "Polygon", coordinates: g.coordinates[0]! };
  if (g?.type === "MultiLineString" && g.coordinates.length === 1) return { type: "LineString", coordinates: g.coordinates[0]! };
  if (g?.type === "MultiPoint" && g.coordinates.length === 1) return { type: "Point", coordinates: g.coordinates[0]! };
  return g;
}

describe.each(["points", "lines", "polygons"])("MapServer %s layer", (layer) => {
  const want = (JSON.parse(read(`${layer}.geojson`)) as { features: Feature[] }).features;

  it.each([
    [`${layer}-wfs100-gml2.xml`, "GML 2, EPSG:4326 (lon lat)"],
    [`${layer}-wfs110-gml311.xml`, "GML 3.1.1, EPSG:4326 (lon lat)"],
    [`${layer}-wfs110-gml311-urn.xml`, "GML 3.1.1, urn:ogc:def:crs:EPSG::4326 (lat lon)"],
    [`${layer}-wfs200-gml32.xml`, "GML 3.2, urn:ogc:def:crs:EPSG::4326 (lat lon)"],
  ])("%s (%s) decodes to MapServer's GeoJSON", (file) => {
    const got = decodeFeatures(read(file));
    expect(want.length).toBeGreaterThan(0);
    expect(got).toHaveLength(want.length);
    got.forEach((f, i) => {
      expect(f.id).toMatch(new RegExp(`^${layer}\\.\\d+$`));
      expect(normalise(f.geometry)).toEqual(normalise(want[i]!.geometry));
      expect(f.properties).toEqual(want[i]!.properties);
    });
  });
});
