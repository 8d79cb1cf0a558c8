/** OGC API Features Part 4 writes against QGIS Server 3.22's /wfs3 (PUT there changes attributes, not the geometry). */
import { beforeEach, describe, expect, it } from "vitest";
import type { OutRecord } from "@geowatch/core";
import { asciiJson, idFromLocation } from "../src/ogcapi-write.js";
import { createWfsProducer } from "../src/producer.js";
import { byUid, emptyLayer, layerFeatures, qgisUrl } from "./writer-helpers.js";

const LAYER = "ogcapi";
const wfs3 = () => new URL("/wfs3", qgisUrl()).toString();

function edit(actiontype: string, uid: string, props: Record<string, unknown> = {}, coords: [number, number] = [10, 50]): OutRecord {
  return { value: JSON.stringify({ metadata: { actiontype, featuretype: LAYER }, data: { type: "Feature", geometry: { type: "Point", coordinates: coords }, properties: { uid, ...props } } }) };
}

describe("wfs producer: OGC API Features on QGIS Server /wfs3", () => {
  beforeEach(() => emptyLayer(LAYER));

  it("creates features (POST, 201 + Location) and returns each new id; non-ASCII text arrives intact", async () => {
    const p = createWfsProducer({ url: wfs3(), protocol: "ogcapi", allowPrivate: true, idProperty: "uid" });
    const res = await p.send([edit("create", "o1", { name: "Zürich ✓", count: 0, flag: false }, [8.5, 47.4]), edit("create", "o2", { name: "", value: 2.5 })]);
    expect(res.map((r) => r.ok)).toEqual([true, true]);
    const m = byUid(await layerFeatures(LAYER));
    expect(res[0]!.ok && `${LAYER}.${res[0]!.id}`).toBe(m.get("o1")![0]!.id);
    expect(res[1]!.ok && `${LAYER}.${res[1]!.id}`).toBe(m.get("o2")![0]!.id);
    expect(m.get("o1")![0]!.properties).toMatchObject({ name: "Zürich ✓", count: 0, flag: false });
    expect(m.get("o1")![0]!.geometry).toEqual({ type: "Point", coordinates: [8.5, 47.4] });
    expect(m.get("o2")![0]!.properties).toMatchObject({ name: "", value: 2.5 });
  });

  it("replays converge: a create of an existing uid replaces it (PUT), update replaces attributes, delete removes, a replayed delete is ok", async () => {
    const p = createWfsProducer({ url: wfs3(), protocol: "ogcapi", allowPrivate: true, idProperty: "uid" });
    expect((await p.send([edit("create", "r1", { count: 1 }), edit("create", "r2", { count: 1 })])).every((r) => r.ok)).toBe(true);
    expect((await p.send([edit("create", "r1", { count: 1 }), edit("update", "r2", { count: 3, name: "three" }), edit("update", "r9", { count: 9 })])).every((r) => r.ok)).toBe(true);
    let m = byUid(await layerFeatures(LAYER));
    expect([...m.keys()].sort()).toEqual(["r1", "r2"]);
    expect(m.get("r2")![0]!.properties).toMatchObject({ count: 3, name: "three" });
    for (let i = 0; i < 2; i++) expect((await p.send([edit("delete", "r1")]))[0]!.ok).toBe(true);
    m = byUid(await layerFeatures(LAYER));
    expect([...m.keys()]).toEqual(["r2"]);
  });

  it("an unknown collection is a per-record error with the server's status, not retryable", async () => {
    const p = createWfsProducer({ url: wfs3(), protocol: "ogcapi", allowPrivate: true });
    const rec = { value: JSON.stringify({ metadata: { actiontype: "create", featuretype: "no_such_collection" }, data: { type: "Feature", geometry: null, properties: {} } }) };
    const [r] = await p.send([rec]);
    expect(r!.ok).toBe(false);
    expect(!r!.ok && r!.retryable).toBe(false);
    expect(!r!.ok && r!.error.message).toMatch(/no_such_collection: HTTP 4\d\d/);
  });
});

describe("OGC API helpers", () => {
  it("reads the id from a Location header, QGIS Server's malformed one too", () => {
    expect(idFromLocation("http://h/collections/c/items/12")).toBe("12");
    expect(idFromLocation("http://h/collections/c/items/a%20b?f=json")).toBe("a b");
    expect(idFromLocation("http://127.0.0.1:28081/wfs3/collections/ogcapi/items?%7B%22TYPE%22:%22FEATURE%22%7D=/1")).toBe("1");
    expect(idFromLocation(null)).toBeUndefined();
  });
  it("writes ASCII-only JSON that parses back to the same value", () => {
    const v = { name: "Zürich ✓ 😀", n: 0 };
    const s = asciiJson(v);
    expect(/^[\x00-\x7f]*$/.test(s)).toBe(true);
    expect(JSON.parse(s)).toEqual(v);
  });
});
