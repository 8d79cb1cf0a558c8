/**
 * The wfs store against QGIS Server (edits in a flush, idempotent re-writes, `read` for stores_in), the testkit
 * store checks that apply to a layer, and every RFC 7946 geometry type written through WFS-T and read back.
 */
import { describe, expect, it } from "vitest";
import { payloadText } from "@geowatch/core";
import { storeChecks } from "@geowatch/testkit";
import { createWfsProducer } from "../src/producer.js";
import { createWfsStore } from "../src/store.js";
import { emptyLayer, layerFeatures, qgisUrl } from "./writer-helpers.js";

const qgis = () => ({ url: qgisUrl(), allowPrivate: true, idProperty: "uid", srsName: "EPSG:4326", axisOrder: "lonlat" as const, nulls: "omit" as const });
const square = (x: number, y: number, d: number) => [[x, y], [x + d, y], [x + d, y + d], [x, y + d], [x, y]];

describe("wfs store on QGIS Server", () => {
  it("a flush of NDJSON envelopes is applied as edits; writing it again changes nothing; read returns the layer", async () => {
    await emptyLayer("geom_polygon");
    const store = createWfsStore(qgis());
    const polygon = { type: "Polygon", coordinates: [square(0, 0, 10), square(2, 2, 3).reverse()] };
    const body = [
      { metadata: { actiontype: "create" }, data: { type: "Feature", geometry: polygon, properties: { uid: "s1", count: 1 } } },
      { metadata: { actiontype: "create" }, data: { type: "Feature", geometry: { type: "Polygon", coordinates: [square(20, 20, 1)] }, properties: { uid: "s2", count: 2 } } },
      { metadata: { actiontype: "update" }, data: { type: "Feature", geometry: null, properties: { uid: "s1", count: 5 } } },
    ].map((v) => JSON.stringify(v)).join("\n") + "\n";
    for (let i = 0; i < 2; i++) await store.write({ key: "geom_polygon", body, contentType: "application/x-ndjson", append: true });
    const got = await layerFeatures("geom_polygon");
    expect(got.map((f) => f.properties.uid).sort()).toEqual(["s1", "s2"]);
    const s1 = got.find((f) => f.properties.uid === "s1")!;
    expect(s1.properties.count).toBe(5);
    expect(s1.geometry).toEqual(polygon);
    const read = await store.read!("geom_polygon");
    const fc = JSON.parse(payloadText(read!)) as { type: string; features: Array<{ properties: Record<string, unknown> }> };
    expect(fc.type).toBe("FeatureCollection");
    expect(fc.features.map((f) => f.properties.uid).sort()).toEqual(["s1", "s2"]);
    await store.write({ key: "geom_polygon", body: JSON.stringify({ metadata: { actiontype: "delete" }, data: { type: "Feature", geometry: null, properties: { uid: "s2" } } }), contentType: "application/json", append: false });
    expect((await layerFeatures("geom_polygon")).map((f) => f.properties.uid)).toEqual(["s1"]);
  });

  it("a flush with an edit the server refuses fails with the server's text (the store sink retries, then dead-letters)", async () => {
    const store = createWfsStore(qgis());
    const body = JSON.stringify({ metadata: { actiontype: "create" }, data: { type: "Feature", geometry: { type: "Polygon", coordinates: [square(0, 0, 1)] }, properties: { uid: "bad", count: "x" } } });
    await expect(store.write({ key: "geom_polygon", body, contentType: "application/json", append: true })).rejects.toThrow(/1 of 1 edits to "geom_polygon" failed.*Property conversion error/);
  });

  it("testkit: a missing layer reads undefined", () => storeChecks.missing({ store: () => createWfsStore(qgis()) }, { append: true, read: true }));
  it("testkit: close is idempotent, write after close is refused", () => storeChecks.closeIdempotent({ store: () => createWfsStore({ ...qgis(), typeName: "geom_point" }) }, { append: true, read: true }));
});

describe("every RFC 7946 geometry type through WFS-T 1.1.0 and back (QGIS Server GeoJSON output)", () => {
  const cases: Array<[string, Record<string, unknown>]> = [
    ["geom_point", { type: "Point", coordinates: [-122.5, 37.75] }],
    ["geom_linestring", { type: "LineString", coordinates: [[0, 0], [1.5, 1.25], [2, -3]] }],
    ["geom_polygon", { type: "Polygon", coordinates: [square(-10, -10, 20), square(-5, -5, 2).reverse(), square(3, 3, 1).reverse()] }],
    ["geom_multipoint", { type: "MultiPoint", coordinates: [[1, 2], [3, 4]] }],
    ["geom_multilinestring", { type: "MultiLineString", coordinates: [[[0, 0], [1, 1]], [[2, 2], [3, 3], [4, 2]]] }],
    ["geom_multipolygon", { type: "MultiPolygon", coordinates: [[square(0, 0, 1)], [square(5, 5, 4), square(6, 6, 1).reverse()]] }],
  ];
  for (const [layer, geometry] of cases) {
    it(`${String(geometry.type)} into ${layer}`, async () => {
      await emptyLayer(layer);
      const p = createWfsProducer({ ...qgis(), typeName: layer });
      const [r] = await p.send([{ value: JSON.stringify({ type: "Feature", geometry, properties: { uid: "g", name: "geometry" } }) }]);
      expect(r!.ok, r!.ok ? "" : r!.error.message).toBe(true);
      const got = await layerFeatures(layer);
      expect(got).toHaveLength(1);
      expect(got[0]!.geometry).toEqual(geometry);
    });
  }
});
