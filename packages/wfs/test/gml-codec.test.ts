import { isGeoWatchError } from "@geowatch/core";
import { codecSuite } from "@geowatch/testkit";
import { describe, expect, it } from "vitest";
import { gmlCodec } from "../src/gml-codec.js";
import type { Feature } from "../src/gml.js";

/** The codec as the runtime makes it: config options (snake_case) parsed by the definition, then created. */
function codecFrom(raw: Record<string, unknown>) {
  const parsed = gmlCodec.parse(raw);
  if (!parsed.ok) throw new Error(JSON.stringify(parsed.problems));
  return gmlCodec.create(parsed.options);
}

const samples: Feature[] = [
  { type: "Feature", id: "pt.1", geometry: { type: "Point", coordinates: [12.5, 41.9] }, properties: { name: "a & b", n: 0, s: "", f: false, z: null } },
  { type: "Feature", id: "pl.2", geometry: { type: "Polygon", coordinates: [[[0, 0], [4, 0], [4, 4], [0, 4], [0, 0]], [[1, 1], [1, 2], [2, 2], [1, 1]]] }, properties: { name: "<holes>" } },
  { type: "Feature", id: "ml.3", geometry: { type: "MultiLineString", coordinates: [[[0, 0], [1, 1]], [[2, 2], [3, 3]]] }, properties: {} },
  { type: "Feature", id: "mp.4", geometry: { type: "MultiPolygon", coordinates: [[[[0, 0], [1, 0], [1, 1], [0, 0]]]] }, properties: { v: -2.5 } },
  { type: "Feature", id: "gc.5", geometry: { type: "GeometryCollection", geometries: [{ type: "MultiPoint", coordinates: [[1, 2], [3, 4]] }, { type: "LineString", coordinates: [[0, 0], [1, 1]] }] }, properties: { t: true } },
  { type: "Feature", id: "n.6", geometry: null, properties: { only: "properties" } },
];

const bad = [
  "not xml at all",
  `<?xml version="1.0"?><!DOCTYPE l [<!ENTITY a "aaaaaaaaaa"><!ENTITY b "&a;&a;&a;&a;&a;&a;&a;&a;&a;&a;">]><l>&b;</l>`,
  `<!DOCTYPE foo [<!ENTITY xxe SYSTEM "file:///etc/passwd">]><f>&xxe;</f>`,
  `<q:t xmlns:q="u" xmlns:gml="http://www.opengis.net/gml/3.2"><q:g><gml:Point><gml:pos>1</gml:pos></gml:Point></q:g></q:t>`,
  `<q:t xmlns:q="u"><q:a></q:b></q:t>`,
  `<ows:ExceptionReport xmlns:ows="http://www.opengis.net/ows/1.1"><ows:Exception exceptionCode="OperationProcessingFailed"><ows:ExceptionText>no</ows:ExceptionText></ows:Exception></ows:ExceptionReport>`,
  new Uint8Array([0x3c, 0x61, 0x3e, 0xc3, 0x28, 0x3c, 0x2f, 0x61, 0x3e]),
];

codecSuite("gml 3.2", { codec: codecFrom({}), samples, bad });
codecSuite("gml 3.1.1", { codec: codecFrom({ version: "3.1.1", feature_type: "qgs:points", namespace_uri: "http://www.qgis.org/gml" }), samples, bad });
codecSuite("gml 3.1.1 lon lat (QGIS Server's insert order)", { codec: codecFrom({ version: "3.1.1", axis_order: "lonlat" }), samples, bad });

function errorOf(fn: () => unknown): Error & { code?: string; path?: string } {
  try {
    fn();
  } catch (err) {
    return err as Error & { code?: string; path?: string };
  }
  throw new Error("expected an error");
}

describe("gml codec options", () => {
  it("lists every problem with its config path", () => {
    const parsed = gmlCodec.parse({ version: "4.0", axis_order: "xy", nulls: "drop", bogus: 1 });
    expect(parsed.ok).toBe(false);
    const paths = parsed.ok ? [] : parsed.problems.map((p) => p.path).sort();
    expect(paths).toEqual(expect.arrayContaining(["version", "axis_order", "nulls"]));
    expect(JSON.stringify(parsed)).toContain("bogus");
  });

  it("documents every option, snake_case", () => {
    const names = gmlCodec.docs().map((d) => d.name);
    expect(names).toEqual(["version", "feature_type", "namespace_prefix", "namespace_uri", "geometry_name", "srs_name", "axis_order", "nulls", "max_bytes", "infer_types"]);
    expect(gmlCodec.docs().every((d) => d.description.length > 10)).toBe(true);
  });

  it("writes the configured feature type, namespace, geometry element and srsName", () => {
    const codec = codecFrom({ version: "3.1.1", feature_type: "points", namespace_prefix: "qgs", namespace_uri: "http://www.qgis.org/gml", geometry_name: "geom", srs_name: "EPSG:4326" });
    const xml = String(codec.encode(samples[0]!));
    expect(xml).toContain('<qgs:points xmlns:gml="http://www.opengis.net/gml" xmlns:xsi="http://www.w3.org/2001/XMLSchema-instance" xmlns:qgs="http://www.qgis.org/gml" gml:id="pt.1">');
    expect(xml).toContain('<qgs:geom><gml:Point srsName="EPSG:4326"><gml:pos>12.5 41.9</gml:pos></gml:Point></qgs:geom>');
    expect(codec.contentType).toBe("text/xml; subtype=gml/3.1.1");
    expect(codecFrom({}).contentType).toBe("application/gml+xml; version=3.2");
  });
});

describe("gml codec values", () => {
  const codec = codecFrom({});

  it("an envelope's featuretype names the element; metadataOf reads the envelope", () => {
    const env = { metadata: { actiontype: "create", featuretype: "roads" }, data: samples[2]! };
    const xml = String(codec.encode(env as never));
    expect(xml).toContain("<gw:roads ");
    expect(codec.metadataOf!(env as never)).toEqual(env.metadata);
    expect(codec.decode(xml)).toEqual(samples[2]);
  });

  it("a FeatureCollection encodes to wfs:FeatureCollection and decodes back to one; unpack gives the features", () => {
    const fc = { type: "FeatureCollection" as const, features: samples };
    const xml = String(codec.encode(fc));
    expect(xml).toContain('<wfs:FeatureCollection xmlns:wfs="http://www.opengis.net/wfs/2.0"');
    expect(xml).toContain(`numberReturned="${samples.length}"`);
    expect(codec.decode(xml)).toEqual(fc);
    expect(codec.unpack!(xml)).toEqual(samples);
  });

  it("a feature record is one line, line breaks in values included", () => {
    const f: Feature = { type: "Feature", id: "l.1", geometry: null, properties: { text: "one\ntwo\r\nthree" } };
    const xml = String(codec.encode(f));
    expect(xml).not.toMatch(/[\r\n]/);
    expect(codec.decode(xml)).toEqual(f);
  });

  it("srs_name is assumed when reading geometries that name none", () => {
    const xml = `<q:t xmlns:q="u" xmlns:gml="http://www.opengis.net/gml"><q:g><gml:Point><gml:pos>41.9 12.5</gml:pos></gml:Point></q:g></q:t>`;
    expect((codec.decode(xml) as Feature).geometry).toEqual({ type: "Point", coordinates: [41.9, 12.5] });
    const urn = codecFrom({ version: "3.1.1", srs_name: "urn:ogc:def:crs:EPSG::4326" });
    expect((urn.decode(xml) as Feature).geometry).toEqual({ type: "Point", coordinates: [12.5, 41.9] });
  });

  it("a bare geometry encodes as a feature without properties", () => {
    const xml = String(codec.encode({ type: "Point", coordinates: [1, 2] } as never));
    expect(codec.decode(xml)).toEqual({ type: "Feature", geometry: { type: "Point", coordinates: [1, 2] }, properties: {} });
  });

  it("invalid values are ENCODE errors naming what and where", () => {
    let e = errorOf(() => codec.encode({ type: "Topology" } as never));
    expect(isGeoWatchError(e, "ENCODE")).toBe(true);
    expect(e.message).toContain('expected a GeoJSON Feature, FeatureCollection or geometry (or an envelope of one), got type "Topology"');
    e = errorOf(() => codec.pack!([samples[0]!, { type: "Feature", geometry: { type: "LineString", coordinates: [[0, 0]] }, properties: {} } as never]));
    expect(e.message).toContain("a line string needs at least 2 positions (at features[1].geometry.coordinates)");
  });

  it("XML refusals become DECODE errors that keep the reason and the line", () => {
    const e = errorOf(() => codec.decode(bad[2]!));
    expect(isGeoWatchError(e, "DECODE")).toBe(true);
    expect(e.message).toBe("[geowatch] [gml] GML: DOCTYPE/entity declarations are not accepted (at line 1)");
  });
});
