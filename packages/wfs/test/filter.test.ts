import { describe, expect, it, beforeAll } from "vitest";
import { encodeFilter, matchesFilter, ogcapiFilterParams, filterSchema } from "../src/filter.js";
import type { FilterExpr } from "../src/filter.js";
import { layerReader, readAll } from "../src/reader.js";
import type { Feature } from "../src/gml-common.js";
import { attr, findElements, parseXml, textOf } from "../src/xml.js";
import { mapserverUrl } from "./reader-helpers.js";

describe("OGC Filter encoding", () => {
  it("FES 2.0: ValueReference, BBOX in the URI's latitude-first order, escaped literals, And of the parts", () => {
    const xml = encodeFilter({ bbox: { bbox: [-10, 40, -5, 41], geometryName: "msGeometry" }, filter: { property: "name", eq: "a<b & \"c\"" } }, "2.0.0")!;
    const doc = parseXml(xml);
    expect(Object.keys(doc)).toEqual(["fes:Filter"]);
    expect(findElements(doc, "And")).toHaveLength(1);
    const env = findElements(doc, "Envelope")[0];
    expect(attr(env, "srsName")).toBe("http://www.opengis.net/def/crs/EPSG/0/4326");
    expect(textOf(findElements(doc, "lowerCorner")[0])).toBe("40 -10");
    expect(textOf(findElements(doc, "upperCorner")[0])).toBe("41 -5");
    expect(textOf(findElements(doc, "Literal")[0])).toBe('a<b & "c"');
    expect(findElements(doc, "ValueReference").map((v) => textOf(v))).toEqual(["msGeometry", "name"]);
  });

  it("Filter 1.1: PropertyName, the URN, and a projected CRS keeps x y", () => {
    const xml = encodeFilter({ bbox: { bbox: [100, 200, 300, 400], crs: "EPSG:3857" }, filter: { not: { property: "v", between: [1, 5] } } }, "1.1.0")!;
    expect(xml).toContain('xmlns:ogc="http://www.opengis.net/ogc"');
    expect(xml).toContain('srsName="urn:ogc:def:crs:EPSG::3857"');
    expect(xml).toContain("<gml:lowerCorner>100 200</gml:lowerCorner>");
    expect(xml).toContain("<ogc:Not><ogc:PropertyIsBetween><ogc:PropertyName>v</ogc:PropertyName><ogc:LowerBoundary><ogc:Literal>1</ogc:Literal>");
    expect(encodeFilter({}, "1.1.0")).toBeUndefined();
  });

  it("every operator has its element; like names its wildcards", () => {
    const ops: Array<[FilterExpr, string]> = [
      [{ property: "a", eq: 1 }, "PropertyIsEqualTo"],
      [{ property: "a", ne: 1 }, "PropertyIsNotEqualTo"],
      [{ property: "a", lt: 1 }, "PropertyIsLessThan"],
      [{ property: "a", lte: 1 }, "PropertyIsLessThanOrEqualTo"],
      [{ property: "a", gt: 1 }, "PropertyIsGreaterThan"],
      [{ property: "a", gte: 1 }, "PropertyIsGreaterThanOrEqualTo"],
      [{ property: "a", like: "x*" }, "PropertyIsLike"],
      [{ property: "a", null: true }, "PropertyIsNull"],
      [{ or: [{ property: "a", eq: 1 }, { property: "b", eq: 2 }] }, "Or"],
    ];
    for (const [e, el] of ops) expect(encodeFilter({ filter: e }, "2.0.0"), el).toContain(`<fes:${el}`);
    expect(encodeFilter({ filter: { property: "a", like: "x*", matchcase: false } }, "2.0.0")).toContain('wildCard="*" singleChar="?" escapeChar="\\" matchCase="false"');
  });

  it("the schema wants exactly one operator per condition", () => {
    expect(filterSchema.safeParse({ property: "a", eq: 1 }).success).toBe(true);
    expect(filterSchema.safeParse({ and: [{ property: "a", eq: 1 }, { not: { property: "b", like: "x" } }] }).success).toBe(true);
    expect(filterSchema.safeParse({ property: "a", eq: 1, ne: 2 }).success).toBe(false);
    expect(filterSchema.safeParse({ property: "a" }).success).toBe(false);
    expect(filterSchema.safeParse({ and: [] }).success).toBe(false);
  });

  it("OGC API takes eq conditions joined by and, and refuses the rest by name", () => {
    expect(ogcapiFilterParams({ and: [{ property: "kind", eq: "tree" }, { property: "value", eq: 3 }] })).toEqual({ kind: "tree", value: "3" });
    expect(() => ogcapiFilterParams({ or: [{ property: "kind", eq: "tree" }] })).toThrow(/only "eq" conditions/);
  });
});

describe("filters on MapServer match the same filter evaluated here", () => {
  const url = () => mapserverUrl();
  let all: Feature[] = [];
  beforeAll(async () => {
    all = await readAll(layerReader({ url: url(), allowPrivate: true, version: "2.0.0", typeName: "ms:points", outputFormat: "geojson", pageSize: 5000 }));
  });

  const inBox = (f: Feature, b: readonly number[]) => {
    const [x, y] = (f.geometry as { coordinates: number[] }).coordinates as [number, number];
    return x >= b[0]! && x <= b[2]! && y >= b[1]! && y <= b[3]!;
  };
  const nums = (fs: Feature[]) => fs.map((f) => Number(f.properties!.num)).sort((a, b) => a - b);

  const cases: Array<{ title: string; filter?: FilterExpr; bbox?: [number, number, number, number] }> = [
    { title: "eq and bbox", filter: { property: "kind", eq: "tree" }, bbox: [-10, 40, -5, 41] },
    { title: "like with a wildcard (text with & and <)", filter: { property: "name", like: "Zürich*" } },
    { title: "or of comparisons, not", filter: { or: [{ property: "value", lt: 2 }, { not: { property: "value", lte: 8 } }] } },
    { title: "between and ne", filter: { and: [{ property: "num", between: [100, 400] }, { property: "kind", ne: "lamp" }] } },
    { title: "bbox alone", bbox: [0, 42, 5, 42.55] },
  ];
  for (const version of ["1.1.0", "2.0.0"] as const) {
    for (const c of cases) {
      it(`WFS ${version}: ${c.title}`, async () => {
        expect(all.length, "the whole layer was read").toBe(3000);
        const want = nums(all.filter((f) => (!c.filter || matchesFilter(f.properties!, c.filter)) && (!c.bbox || inBox(f, c.bbox))));
        expect(want.length, "the case selects some features").toBeGreaterThan(0);
        expect(want.length, "and not all").toBeLessThan(3000);
        const got = await readAll(
          layerReader({
            url: url(),
            allowPrivate: true,
            version,
            typeName: version === "2.0.0" ? "ms:points" : "points",
            outputFormat: version === "2.0.0" ? "geojson" : "gml",
            pageSize: 1000,
            ...(c.filter ? { filter: c.filter } : {}),
            ...(c.bbox ? { bbox: c.bbox } : {}),
          }),
        );
        expect(nums(got)).toEqual(want);
      });
    }
  }
});
