import { isGeoWatchError } from "@geowatch/core";
import { describe, expect, it } from "vitest";
import { axisOrderOf, decodeFeatures, decodeGeometry, encodeFeature, encodeFeatureCollection, encodeGeometry, type Feature, type Geometry, type GmlVersion } from "../src/gml.js";
import { parseXml } from "../src/xml.js";

const GEOMETRIES: Record<string, Geometry> = {
  point: { type: "Point", coordinates: [12.5, 41.9] },
  point3d: { type: "Point", coordinates: [12.5, 41.9, 21] },
  line: { type: "LineString", coordinates: [[0, 0], [1.5, 2.25], [-3, 4e-7]] },
  line3d: { type: "LineString", coordinates: [[0, 0, 1], [1, 1, 2]] },
  polygonWithHoles: {
    type: "Polygon",
    coordinates: [
      [[0, 0], [10, 0], [10, 10], [0, 10], [0, 0]],
      [[1, 1], [2, 1], [2, 2], [1, 2], [1, 1]],
      [[5, 5], [6, 5], [6, 6], [5, 6], [5, 5]],
    ],
  },
  multiPoint: { type: "MultiPoint", coordinates: [[1, 2], [3, 4]] },
  multiLine: { type: "MultiLineString", coordinates: [[[0, 0], [1, 1]], [[2, 2], [3, 3], [4, 5]]] },
  multiPolygon: {
    type: "MultiPolygon",
    coordinates: [
      [[[0, 0], [1, 0], [1, 1], [0, 0]]],
      [[[10, 10], [20, 10], [20, 20], [10, 10]], [[12, 11], [13, 11], [13, 12], [12, 11]]],
    ],
  },
  collection: {
    type: "GeometryCollection",
    geometries: [
      { type: "Point", coordinates: [1, 2] },
      { type: "LineString", coordinates: [[0, 0], [1, 1]] },
      { type: "GeometryCollection", geometries: [{ type: "Polygon", coordinates: [[[0, 0], [1, 0], [1, 1], [0, 0]]] }] },
    ],
  },
};

const VERSIONS: GmlVersion[] = ["3.1.1", "3.2"];
const FT = { featureType: "points", namespacePrefix: "qgs", namespaceUri: "http://www.qgis.org/gml", geometryName: "geometry" };

function errorOf(fn: () => unknown): Error & { code?: string; path?: string } {
  try {
    fn();
  } catch (err) {
    return err as Error & { code?: string; path?: string };
  }
  throw new Error("expected an error");
}

describe.each(VERSIONS)("GML %s geometry round trips", (version) => {
  for (const [name, g] of Object.entries(GEOMETRIES)) {
    it(`${name}`, () => {
      const xml = encodeGeometry(g, { version, declareNamespace: true });
      expect(decodeGeometry(parseXml(xml))).toEqual(g);
    });
  }

  it("writes lat lon for the EPSG:4326 URN/URI and lon lat for CRS84, and reads each back", () => {
    const p: Geometry = { type: "Point", coordinates: [12.5, 41.9] };
    const urn = encodeGeometry(p, { version, declareNamespace: true });
    expect(urn).toContain(version === "3.2" ? 'srsName="http://www.opengis.net/def/crs/EPSG/0/4326"' : 'srsName="urn:ogc:def:crs:EPSG::4326"');
    expect(urn).toContain("<gml:pos>41.9 12.5</gml:pos>");
    const crs84 = encodeGeometry(p, { version, srsName: "urn:ogc:def:crs:OGC:1.3:CRS84", declareNamespace: true });
    expect(crs84).toContain("<gml:pos>12.5 41.9</gml:pos>");
    expect(decodeGeometry(parseXml(crs84))).toEqual(p);
    const forced = encodeGeometry(p, { version, axisOrder: "lonlat", declareNamespace: true });
    expect(forced).toContain("<gml:pos>12.5 41.9</gml:pos>");
    // Read with the same override, the position comes back; without it, the URN says lat lon.
    expect(decodeGeometry(parseXml(forced), { axisOrder: "lonlat" })).toEqual(p);
    expect(decodeGeometry(parseXml(forced))).toEqual({ type: "Point", coordinates: [41.9, 12.5] });
  });
});

describe("version specifics", () => {
  it("3.2 uses MultiCurve/MultiSurface and gml:id on geometries; 3.1.1 MultiLineString/MultiPolygon without ids", () => {
    const v32 = encodeGeometry(GEOMETRIES.multiPolygon!, { version: "3.2", gmlId: "g1" });
    expect(v32).toMatch(/^<gml:MultiSurface gml:id="g1" srsName="[^"]+"><gml:surfaceMember><gml:Polygon gml:id="g1.0">/);
    expect(encodeGeometry(GEOMETRIES.multiLine!, { version: "3.2" })).toContain("<gml:MultiCurve");
    const v311 = encodeGeometry(GEOMETRIES.multiPolygon!, { version: "3.1.1", gmlId: "g1" });
    expect(v311).toMatch(/^<gml:MultiPolygon srsName="urn:ogc:def:crs:EPSG::4326"><gml:polygonMember><gml:Polygon>/);
    expect(encodeGeometry(GEOMETRIES.multiLine!, { version: "3.1.1" })).toContain("<gml:MultiLineString");
    expect(encodeGeometry(GEOMETRIES.line3d!, { version: "3.2" })).toContain('<gml:posList srsDimension="3">');
  });

  it("axis order by srsName form", () => {
    expect(axisOrderOf("EPSG:4326")).toBe("lonlat");
    expect(axisOrderOf("http://www.opengis.net/gml/srs/epsg.xml#4326")).toBe("lonlat");
    expect(axisOrderOf("urn:ogc:def:crs:EPSG::4326")).toBe("latlon");
    expect(axisOrderOf("urn:x-ogc:def:crs:EPSG:6.6:4326")).toBe("latlon");
    expect(axisOrderOf("http://www.opengis.net/def/crs/EPSG/0/4326")).toBe("latlon");
    expect(axisOrderOf("urn:ogc:def:crs:OGC:1.3:CRS84")).toBe("lonlat");
    expect(axisOrderOf("http://www.opengis.net/def/crs/OGC/1.3/CRS84")).toBe("lonlat");
    expect(axisOrderOf("urn:ogc:def:crs:EPSG::3857")).toBe("lonlat");
    expect(axisOrderOf("urn:ogc:def:crs:EPSG::3035")).toBe("latlon");
    expect(axisOrderOf("urn:ogc:def:crs:EPSG::4978")).toBe("lonlat");
    expect(axisOrderOf(undefined)).toBe("lonlat");
  });
});

const EDGE: Feature = {
  type: "Feature",
  id: "points.7",
  geometry: { type: "Point", coordinates: [1, 2] },
  properties: {
    zero: 0, empty: "", no: false, yes: true, nothing: null, neg: -1.5, big: 1e21,
    text: `a < b & c > "d" 'e'`, spaces: "  padded  ", lines: "one\ntwo\r\nthree", unicode: "Zürich \u2603 \ud83d\ude00",
    numeric_text: "007", entity_text: "&amp; &xxe;", cdata_like: "]]> <![CDATA[",
  },
};

describe.each(VERSIONS)("GML %s feature round trips", (version) => {
  it("keeps every property value: 0, '', false, null, escaping, whitespace, unicode", () => {
    const xml = encodeFeature(EDGE, { version, ...FT });
    expect(xml).toContain('<qgs:nothing xsi:nil="true"/>');
    expect(xml).toContain("<qgs:zero>0</qgs:zero>");
    expect(xml).toContain("<qgs:empty></qgs:empty>");
    expect(xml).toContain("<qgs:no>false</qgs:no>");
    const [back] = decodeFeatures(xml);
    expect(back).toEqual(EDGE);
    // A tree parseXml made reads the same (its text is decoded already: not decoded twice).
    expect(decodeFeatures(parseXml(xml))).toEqual([EDGE]);
  });

  it("omits nulls with nulls: omit", () => {
    const xml = encodeFeature(EDGE, { version, ...FT, nulls: "omit" });
    expect(xml).not.toContain("nothing");
    expect(decodeFeatures(xml)[0]!.properties).not.toHaveProperty("nothing");
  });

  it("a collection of every geometry type decodes to the same features, in order", () => {
    const features: Feature[] = Object.entries(GEOMETRIES).map(([name, g], i) => ({ type: "Feature", id: `f${i}`, geometry: g, properties: { name, i } }));
    features.push({ type: "Feature", id: "nogeom", geometry: null, properties: { name: "none", i: 99 } });
    const xml = encodeFeatureCollection(features, { version, ...FT });
    expect(decodeFeatures(xml)).toEqual(features);
    expect(decodeFeatures(xml, { version })).toHaveLength(features.length);
    const other = version === "3.2" ? "3.1.1" : "3.2";
    expect(errorOf(() => decodeFeatures(xml, { version: other })).message).toContain(`expected GML ${other}`);
  });

  it("numeric ids become <type>.<id> gml:ids", () => {
    const xml = encodeFeature({ type: "Feature", id: 12, geometry: null, properties: {} }, { version, ...FT });
    expect(xml).toContain('gml:id="points.12"');
    expect(decodeFeatures(xml)[0]!.id).toBe("points.12");
  });

  it("inferTypes false keeps text; propertyTypes types by name", () => {
    const xml = encodeFeature({ type: "Feature", geometry: null, properties: { a: 1, b: true, c: "12" } }, { version, ...FT });
    expect(decodeFeatures(xml, { inferTypes: false })[0]!.properties).toEqual({ a: "1", b: "true", c: "12" });
    expect(decodeFeatures(xml, { propertyTypes: { c: "string" } })[0]!.properties).toEqual({ a: 1, b: true, c: "12" });
  });
});

describe("encode errors name the problem and where", () => {
  const opts = { version: "3.2" as const, ...FT };
  it("bad coordinates, open rings, bad names, unknown types", () => {
    let e = errorOf(() => encodeFeature({ type: "Feature", geometry: { type: "Point", coordinates: [1, Number.NaN] }, properties: {} }, opts));
    expect(isGeoWatchError(e, "ENCODE")).toBe(true);
    expect(e.message).toContain("coordinate 1 is NaN, not a finite number (at feature.geometry.coordinates)");
    e = errorOf(() => encodeFeature({ type: "Feature", geometry: { type: "Polygon", coordinates: [[[0, 0], [1, 0], [1, 1], [0, 1]]] }, properties: {} }, opts));
    expect(e.message).toContain("a linear ring must end where it starts (at feature.geometry.coordinates[0])");
    e = errorOf(() => encodeFeature({ type: "Feature", geometry: null, properties: { "bad name": 1 } }, opts));
    expect(e.message).toContain('property name "bad name" is not an XML element name');
    e = errorOf(() => encodeFeature({ type: "Feature", geometry: { type: "Circle", coordinates: [0, 0] } as unknown as Geometry, properties: {} }, opts));
    expect(e.message).toContain('unknown geometry type "Circle"');
    e = errorOf(() => encodeFeature({ type: "Feature", geometry: null, properties: { geometry: 1 } }, opts));
    expect(e.message).toContain("has the geometry element's name");
    e = errorOf(() => encodeFeature({ type: "Feature", geometry: null, properties: {} }, { ...opts, featureType: "1bad" }));
    expect(e.message).toContain('feature type "1bad" is not an XML name');
  });
});

describe("exception reports", () => {
  it("a WFS 1.0 ServiceExceptionReport with references in its attributes and text", () => {
    const ex = `<ServiceExceptionReport xmlns="http://www.opengis.net/ogc"><ServiceException code="Invalid&amp;Bad">a &lt; b</ServiceException></ServiceExceptionReport>`;
    expect(errorOf(() => decodeFeatures(ex)).message).toContain("the server answered with an exception (Invalid&Bad): a < b");
    expect(errorOf(() => decodeFeatures(parseXml(ex))).message).toContain("the server answered with an exception (Invalid&Bad): a < b");
  });
});

describe("a WFS 2.0 truncatedResponse", () => {
  it("is an error with the server's text, not a short list of features", () => {
    const xml = `<wfs:FeatureCollection xmlns:wfs="http://www.opengis.net/wfs/2.0" xmlns:gml="http://www.opengis.net/gml/3.2" xmlns:ows="http://www.opengis.net/ows/1.1" xmlns:q="u">
<wfs:member><q:t gml:id="t.1"><q:n>1</q:n></q:t></wfs:member>
<wfs:truncatedResponse><ows:ExceptionReport version="2.0.0"><ows:Exception exceptionCode="ResponseCacheExceeded"><ows:ExceptionText>database connection lost</ows:ExceptionText></ows:Exception></ows:ExceptionReport></wfs:truncatedResponse>
</wfs:FeatureCollection>`;
    const e = errorOf(() => decodeFeatures(xml));
    expect(isGeoWatchError(e, "DECODE")).toBe(true);
    expect(e.message).toContain("the server cut the response short: database connection lost (at wfs:FeatureCollection/wfs:truncatedResponse)");
  });
});

describe("decode errors name the problem and the element path", () => {
  it("points at the broken element", () => {
    const xml = `<wfs:FeatureCollection xmlns:wfs="http://www.opengis.net/wfs/2.0" xmlns:gml="http://www.opengis.net/gml/3.2" xmlns:q="u">
<wfs:member><q:t gml:id="a"><q:g><gml:Point><gml:pos>1 2</gml:pos></gml:Point></q:g></q:t></wfs:member>
<wfs:member><q:t gml:id="b"><q:g><gml:Polygon><gml:exterior><gml:LinearRing><gml:posList>0 0 1 x 1 1 0 0</gml:posList></gml:LinearRing></gml:exterior></gml:Polygon></q:g></q:t></wfs:member>
</wfs:FeatureCollection>`;
    const e = errorOf(() => decodeFeatures(xml));
    expect(isGeoWatchError(e, "DECODE")).toBe(true);
    expect(e.message).toContain('coordinate "x" is not a number (at wfs:FeatureCollection/wfs:member[2]/q:t/q:g/gml:Polygon/gml:exterior/gml:LinearRing/gml:posList)');
  });

  it("odd coordinate counts, unsupported geometries, exception reports", () => {
    const base = (g: string) => `<q:t xmlns:q="u" xmlns:gml="http://www.opengis.net/gml"><q:g>${g}</q:g></q:t>`;
    expect(errorOf(() => decodeFeatures(base("<gml:LineString><gml:posList>1 2 3</gml:posList></gml:LineString>"))).message).toContain("3 numbers do not make positions of 2 coordinates");
    expect(errorOf(() => decodeFeatures(base("<gml:Solid/>"))).message).toContain("GML geometry gml:Solid is not supported");
    const ex = `<ows:ExceptionReport xmlns:ows="http://www.opengis.net/ows"><ows:Exception exceptionCode="NoApplicableCode"><ows:ExceptionText>boom</ows:ExceptionText></ows:Exception></ows:ExceptionReport>`;
    expect(errorOf(() => decodeFeatures(ex)).message).toContain("the server answered with an exception (NoApplicableCode): boom");
  });
});

describe("large collections are read in parts", () => {
  const many: Feature[] = Array.from({ length: 6000 }, (_, i) => ({
    type: "Feature",
    id: `f${i}`,
    geometry: i % 2 ? { type: "Point", coordinates: [i / 100, -i / 200] } : { type: "LineString", coordinates: [[0, 0], [i, i / 3], [1, 2]] },
    properties: { i, name: `feature <${i}>` },
  }));

  it("a multi-megabyte collection decodes to every feature in order", () => {
    const xml = encodeFeatureCollection(many, { version: "3.2", ...FT });
    expect(xml.length).toBeGreaterThan(1.5 * (1 << 20));
    expect(decodeFeatures(xml)).toEqual(many);
    expect(decodeFeatures(Buffer.from(xml))).toEqual(many);
  });

  it("an error in a later part names the member's index in the whole document", () => {
    const xml = encodeFeatureCollection(many, { version: "3.1.1", ...FT }).replace("<gml:pos>-27.495 54.99</gml:pos>", "<gml:pos>-27.495 oops</gml:pos>");
    const e = errorOf(() => decodeFeatures(xml));
    expect(e.message).toContain('coordinate "oops" is not a number (at wfs:FeatureCollection/gml:featureMember[5500]/qgs:points/qgs:geometry/gml:Point/gml:pos)');
  });

  it("a truncated large response is refused, not read as fewer features", () => {
    const xml = encodeFeatureCollection(many, { version: "3.2", ...FT });
    const e = errorOf(() => decodeFeatures(xml.slice(0, Math.floor(xml.length * 0.8))));
    expect(isGeoWatchError(e, "XML")).toBe(true);
    expect(e.message).toMatch(/not well-formed XML: .*is not closed/);
  });
});

describe("decode options", () => {
  it("srsName is assumed for geometries without one; version '2' accepts the GML 2/3.1.1 namespace", () => {
    const xml = `<q:t xmlns:q="u" xmlns:gml="http://www.opengis.net/gml"><q:g><gml:Point><gml:pos>41.9 12.5</gml:pos></gml:Point></q:g></q:t>`;
    expect(decodeFeatures(xml)[0]!.geometry).toEqual({ type: "Point", coordinates: [41.9, 12.5] });
    expect(decodeFeatures(xml, { srsName: "urn:ogc:def:crs:EPSG::4326" })[0]!.geometry).toEqual({ type: "Point", coordinates: [12.5, 41.9] });
    expect(decodeFeatures(xml, { version: "2" })).toHaveLength(1);
    expect(errorOf(() => decodeFeatures(xml, { version: "3.2" })).message).toContain("expected GML 3.2");
  });

  it("GML 2 coordinates with custom separators, coord elements, boxes and repeated properties", () => {
    const xml = `<q:t xmlns:q="u" xmlns:gml="http://www.opengis.net/gml" fid="t.1">
<q:a><gml:LineString srsName="EPSG:4326"><gml:coordinates cs=";" ts="|" decimal=",">1,5;2|3;4,25</gml:coordinates></gml:LineString></q:a>
<q:b><gml:Point><gml:coord><gml:X>7</gml:X><gml:Y>8</gml:Y></gml:coord></gml:Point></q:b>
<q:c><gml:Box><gml:coordinates>0,0 2,1</gml:coordinates></gml:Box></q:c>
<q:tag>x</q:tag><q:tag>y</q:tag></q:t>`;
    const [f] = decodeFeatures(xml);
    expect(f).toEqual({
      type: "Feature",
      id: "t.1",
      geometry: { type: "LineString", coordinates: [[1.5, 2], [3, 4.25]] },
      properties: {
        b: { type: "Point", coordinates: [7, 8] },
        c: { type: "Polygon", coordinates: [[[0, 0], [2, 0], [2, 1], [0, 1], [0, 0]]] },
        tag: ["x", "y"],
      },
    });
  });

  it("GML 3 curves, surfaces, envelopes and mixed collection members keep document order", () => {
    const xml = `<q:t xmlns:q="u" xmlns:gml="http://www.opengis.net/gml/3.2"><q:g><gml:MultiGeometry srsName="http://www.opengis.net/def/crs/OGC/1.3/CRS84">
<gml:geometryMembers><gml:Point><gml:pos>1 2</gml:pos></gml:Point><gml:Curve><gml:segments><gml:LineStringSegment><gml:posList>0 0 1 1</gml:posList></gml:LineStringSegment><gml:LineStringSegment><gml:posList>1 1 2 0</gml:posList></gml:LineStringSegment></gml:segments></gml:Curve><gml:Point><gml:pos>3 4</gml:pos></gml:Point></gml:geometryMembers>
<gml:geometryMember><gml:Surface><gml:patches><gml:PolygonPatch><gml:exterior><gml:LinearRing><gml:pos>0 0</gml:pos><gml:pos>1 0</gml:pos><gml:pos>1 1</gml:pos><gml:pos>0 0</gml:pos></gml:LinearRing></gml:exterior></gml:PolygonPatch></gml:patches></gml:Surface></gml:geometryMember>
<gml:geometryMember><gml:Envelope><gml:lowerCorner>0 0</gml:lowerCorner><gml:upperCorner>1 2</gml:upperCorner></gml:Envelope></gml:geometryMember>
</gml:MultiGeometry></q:g></q:t>`;
    expect(decodeFeatures(xml)[0]!.geometry).toEqual({
      type: "GeometryCollection",
      geometries: [
        { type: "Point", coordinates: [1, 2] },
        { type: "LineString", coordinates: [[0, 0], [1, 1], [2, 0]] },
        { type: "Point", coordinates: [3, 4] },
        { type: "Polygon", coordinates: [[[0, 0], [1, 0], [1, 1], [0, 0]]] },
        { type: "Polygon", coordinates: [[[0, 0], [1, 0], [1, 2], [0, 2], [0, 0]]] },
      ],
    });
  });

  it("decodeGeometry reads a parseXml tree; a 3.2 collection without ids gets unique geometry ids", () => {
    const doc = parseXml(encodeGeometry(GEOMETRIES.polygonWithHoles!, { version: "3.1.1", declareNamespace: true }));
    expect(decodeGeometry(doc)).toEqual(GEOMETRIES.polygonWithHoles);
    const xml = encodeFeatureCollection([{ type: "Feature", geometry: GEOMETRIES.multiPoint!, properties: {} }, { type: "Feature", geometry: GEOMETRIES.multiPoint!, properties: {} }], { version: "3.2", ...FT });
    const ids = [...xml.matchAll(/gml:id="([^"]+)"/g)].map((m) => m[1]);
    expect(ids.length).toBe(6);
    expect(new Set(ids).size).toBe(6);
  });
});

describe("coordinate numbers", () => {
  it("read exactly as Number() reads them (random decimals, signs, exponents, leading zeros)", () => {
    let seed = 7;
    const rnd = () => ((seed = (seed * 1103515245 + 12345) % 2147483648) / 2147483648);
    const words: string[] = [];
    for (let i = 0; i < 20000; i++) {
      const x = (rnd() - 0.5) * 10 ** Math.floor(rnd() * 12 - 4);
      const k = i % 5;
      words.push(k === 0 ? String(x) : k === 1 ? x.toFixed(Math.floor(rnd() * 16)) : k === 2 ? x.toExponential(Math.floor(rnd() * 17)) : k === 3 ? x.toPrecision(1 + Math.floor(rnd() * 17)) : `+00${Math.abs(x).toFixed(6)}`);
    }
    words.push("-0", "0", ".5", "1.", "-.25", "123456789012345", "1234567890123456789", "0.000000000000001");
    const posList = words.join(" ");
    const xml = `<q:t xmlns:q="u" xmlns:gml="http://www.opengis.net/gml"><q:g><gml:LineString><gml:posList>${posList}</gml:posList></gml:LineString></q:g></q:t>`;
    const got = (decodeFeatures(xml)[0]!.geometry as { coordinates: number[][] }).coordinates.flat();
    expect(got).toHaveLength(words.length);
    words.forEach((w, i) => expect(Object.is(got[i], Number(w)), `${w}: ${got[i]} vs ${Number(w)}`).toBe(true));
  });

  it("refuses hexadecimal, binary, octal, Infinity and NaN", () => {
    for (const w of ["0x10", "0b101", "0o7", "Infinity", "NaN", "1e400", "--1"]) {
      const xml = `<q:t xmlns:q="u" xmlns:gml="http://www.opengis.net/gml"><q:g><gml:Point><gml:pos>${w} 1</gml:pos></gml:Point></q:g></q:t>`;
      expect(errorOf(() => decodeFeatures(xml)).message).toContain(`coordinate "${w}" is not a number`);
    }
  });
});
