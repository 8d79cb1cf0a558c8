/** WFS-T 1.1.0 writer against QGIS Server 3.22: per-record results, idempotent replays, errors with the server's text. */
import { describe, expect, it, beforeEach } from "vitest";
import { isGeoWatchError, type OutRecord } from "@geowatch/core";
import { createWfsProducer, editsOf } from "../src/producer.js";
import { parseTransactionResponse } from "../src/transaction.js";
import { byUid, emptyLayer, layerFeatures, qgisUrl } from "./writer-helpers.js";

const LAYER = "writer";
// QGIS Server: lon lat whatever the srsName says, and xsi:nil is stored as "" (so nulls are left out).
const base = () => ({ url: qgisUrl(), allowPrivate: true, typeName: LAYER, srsName: "EPSG:4326", axisOrder: "lonlat" as const, nulls: "omit" as const });

function edit(actiontype: string, uid: string, props: Record<string, unknown> = {}, coords: [number, number] | null = [10, 50]): OutRecord {
  const value = { metadata: { actiontype, featuretype: LAYER }, data: { type: "Feature", geometry: coords ? { type: "Point", coordinates: coords } : null, properties: { uid, ...props } } };
  return { value: JSON.stringify(value) };
}

describe("wfs producer: WFS-T 1.1.0 on QGIS Server", () => {
  beforeEach(() => emptyLayer(LAYER));

  it("inserts a batch with every property value kept (0, \"\", false, null, text to escape) and returns the new ids in record order", async () => {
    const p = createWfsProducer({ ...base(), idProperty: "uid" });
    const records = [
      edit("create", "a", { name: "", value: 0, count: 0, flag: false, updated: "2024-01-02T03:04:05Z" }, [1.5, 2.5]),
      edit("create", "b", { name: "<A & B> \"q\" 'x' ü", value: -1.25, count: 7, flag: true, updated: null }, [-70.25, -33.5]),
      edit("create", "c", { name: null }, [179.5, 89]),
    ];
    const res = await p.send(records);
    expect(res.map((r) => r.ok)).toEqual([true, true, true]);
    const got = await layerFeatures(LAYER);
    expect(got).toHaveLength(3);
    const m = byUid(got);
    // The id each result names is the feature that holds that record's uid (QGIS answers inserts in reverse order).
    for (const [i, uid] of ["a", "b", "c"].entries()) {
      const r = res[i]!;
      expect(r.ok && r.id).toBe(m.get(uid)![0]!.id);
    }
    expect(m.get("a")![0]!.properties).toMatchObject({ name: "", value: 0, count: 0, flag: false });
    expect(String(m.get("a")![0]!.properties.updated)).toMatch(/^2024-01-02T03:04:05/);
    expect(m.get("a")![0]!.geometry).toEqual({ type: "Point", coordinates: [1.5, 2.5] });
    expect(m.get("b")![0]!.properties).toMatchObject({ name: "<A & B> \"q\" 'x' ü", value: -1.25, count: 7, flag: true, updated: null });
    expect(m.get("b")![0]!.geometry).toEqual({ type: "Point", coordinates: [-70.25, -33.5] });
    expect(m.get("c")![0]!.properties.name).toBeNull();
  });

  it("create, update and delete by actiontype; replaying the same records converges (no duplicate, deletes stay applied)", async () => {
    const p = createWfsProducer({ ...base(), idProperty: "uid" });
    const batch1 = [edit("create", "u1", { count: 1 }), edit("create", "u2", { count: 1 }), edit("create", "u3", { count: 1 })];
    const batch2 = [edit("update", "u1", { count: 2, name: "two" }, [5, 6]), edit("delete", "u2"), edit("create", "u4", { count: 4 }), edit("update", "u4", { count: 5 }), edit("delete", "u5")];
    for (let round = 0; round < 2; round++) {
      expect((await p.send(batch1)).every((r) => r.ok)).toBe(true);
      expect((await p.send(batch2)).every((r) => r.ok)).toBe(true);
    }
    // A replay of the first batch after the second: creates of existing ids update them in place.
    expect((await p.send(batch1)).every((r) => r.ok)).toBe(true);
    const m = byUid(await layerFeatures(LAYER));
    expect([...m.keys()].sort()).toEqual(["u1", "u2", "u3", "u4"]);
    for (const fs of m.values()) expect(fs).toHaveLength(1);
    expect(m.get("u1")![0]!.properties).toMatchObject({ count: 1, name: "two" });
    expect(m.get("u4")![0]!.properties.count).toBe(5);
    // Replaying batch 2 once more applies the delete again.
    expect((await p.send(batch2)).every((r) => r.ok)).toBe(true);
    const after = byUid(await layerFeatures(LAYER));
    expect(after.has("u2")).toBe(false);
    expect(after.get("u1")![0]!.geometry).toEqual({ type: "Point", coordinates: [5, 6] });
  });

  it("120 deletes in one batch all apply (QGIS Server deletes nothing when one Delete names more than ~85 ids)", async () => {
    const p = createWfsProducer({ ...base(), idProperty: "uid" });
    const uids = Array.from({ length: 120 }, (_, i) => `d${i}`);
    expect((await p.send(uids.map((u) => edit("create", u)))).every((r) => r.ok)).toBe(true);
    expect(await layerFeatures(LAYER)).toHaveLength(120);
    expect((await p.send(uids.map((u) => edit("delete", u)))).every((r) => r.ok)).toBe(true);
    expect(await layerFeatures(LAYER)).toHaveLength(0);
  });

  it("without id_property: update and delete act on the Feature's id (the server's feature id)", async () => {
    const p = createWfsProducer(base());
    const [created] = await p.send([edit("create", "plain", { count: 1 })]);
    expect(created!.ok).toBe(true);
    const fid = created!.ok ? created!.id! : "";
    expect(fid).toMatch(/^writer\.\d+$/);
    const upd = { metadata: { actiontype: "update" }, data: { type: "Feature", id: fid, geometry: null, properties: { count: 9 } } };
    expect((await p.send([{ value: JSON.stringify(upd) }]))[0]!.ok).toBe(true);
    expect((await layerFeatures(LAYER))[0]!.properties.count).toBe(9);
    const del = { metadata: { actiontype: "delete" }, data: { type: "Feature", id: fid, geometry: null, properties: {} } };
    expect((await p.send([{ value: JSON.stringify(del) }]))[0]!.ok).toBe(true);
    expect(await layerFeatures(LAYER)).toHaveLength(0);
  });

  it("a record the server refuses fails alone, not retryable, with the server's text; the others are written", async () => {
    const p = createWfsProducer({ ...base(), idProperty: "uid" });
    const res = await p.send([edit("create", "ok1"), edit("create", "bad", { count: "not a number" }), edit("create", "ok2"), { value: "{not json" }, edit("explode", "x")]);
    expect(res.map((r) => r.ok)).toEqual([true, false, true, false, false]);
    const bad = res[1]!;
    expect(!bad.ok && bad.retryable).toBe(false);
    expect(!bad.ok && bad.error.message).toMatch(/Property conversion error/);
    expect(!res[4]!.ok && res[4]!.error.message).toMatch(/actiontype "explode"/);
    expect([...byUid(await layerFeatures(LAYER)).keys()].sort()).toEqual(["ok1", "ok2"]);
  });

  it("an unknown feature type is a per-record error naming it", async () => {
    const p = createWfsProducer({ ...base(), idProperty: "uid" });
    const rec = { value: JSON.stringify({ metadata: { actiontype: "create", featuretype: "no_such_layer" }, data: { type: "Feature", geometry: null, properties: { uid: "z" } } }) };
    const [r] = await p.send([rec, edit("create", "fine")]);
    expect(r!.ok).toBe(false);
    expect(!r!.ok && r!.error.message).toMatch(/no_such_layer/);
  });

  it("refuses the loopback server without allow_private (URL policy), as a non-retryable URL_REFUSED", async () => {
    const p = createWfsProducer({ url: qgisUrl(), typeName: LAYER, featureNamespace: "http://www.qgis.org/gml", geometryName: "geometry" });
    const err = await p.send([edit("create", "x")]).then(() => undefined, (e: unknown) => e);
    expect(isGeoWatchError(err), String(err)).toBe(true);
    expect((err as { code: string }).code).toBe("URL_REFUSED");
    expect(String(err)).toMatch(/127\.0\.0\.1/);
  });
});

describe("edits and responses", () => {
  it("reads envelopes, bare Features and FeatureCollections", () => {
    expect(editsOf({ type: "Feature", geometry: null, properties: {} }, { typeName: "t" })[0]!.action).toBe("create");
    expect(editsOf({ metadata: { actiontype: "remove", featuretype: "f" }, data: { type: "Feature", geometry: null, properties: {} } }, {})[0]).toMatchObject({ action: "delete", typeName: "f" });
    expect(editsOf({ type: "FeatureCollection", features: [{ type: "Feature", geometry: null, properties: {} }, { type: "Feature", geometry: null, properties: {} }] }, { typeName: "t" })).toHaveLength(2);
    expect(() => editsOf({ type: "Feature", geometry: null, properties: {} }, {})).toThrow(/no feature type/);
  });

  it("parses a WFS 2.0.0 TransactionResponse (ResourceId by handle) and an ExceptionReport", () => {
    const tx = parseTransactionResponse(
      `<wfs:TransactionResponse xmlns:wfs="http://www.opengis.net/wfs/2.0" xmlns:fes="http://www.opengis.net/fes/2.0" version="2.0.0"><wfs:TransactionSummary><wfs:totalInserted>2</wfs:totalInserted></wfs:TransactionSummary><wfs:InsertResults><wfs:Feature handle="gw1"><fes:ResourceId rid="pts.8"/></wfs:Feature><wfs:Feature handle="gw0"><fes:ResourceId rid="pts.7"/></wfs:Feature></wfs:InsertResults></wfs:TransactionResponse>`,
    );
    expect(tx.inserted.get("gw0")).toEqual(["pts.7"]);
    expect(tx.inserted.get("gw1")).toEqual(["pts.8"]);
    const ex = parseTransactionResponse(
      `<ows:ExceptionReport xmlns:ows="http://www.opengis.net/ows/1.1" version="2.0.0"><ows:Exception exceptionCode="InvalidValue" locator="gw3"><ows:ExceptionText>bad &lt;value&gt;</ows:ExceptionText></ows:Exception></ows:ExceptionReport>`,
    );
    expect(ex.exception).toEqual({ text: "InvalidValue: bad <value>", locator: "gw3" });
  });
});
