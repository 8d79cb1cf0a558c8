import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { LayerInput, RegistryStorage } from "../src/index.js";
import { freshStorage } from "./engines.js";

const day = (s: string) => Date.parse(`${s}T00:00:00Z`);

function layer(i: number, over: Partial<LayerInput> = {}): LayerInput {
  return {
    identifier: `urn:test:${i}`,
    name: `layer${i}`,
    title: `Layer ${i}`,
    abstract: "",
    keywords: [],
    bbox: [i, i, i + 1, i + 1],
    crs: ["EPSG:4326"],
    type: "OGC:WMS",
    url: "http://127.0.0.1:1/wms",
    owner: "alice",
    ...over,
  };
}

describe.each(["sqlite", "postgres"] as const)("storage on %s", (engine) => {
  let s: RegistryStorage;
  let drop: () => Promise<void>;
  let serviceId: number;

  beforeAll(async () => {
    ({ storage: s, drop } = await freshStorage(engine));
    const svc = await s.addService({ url: "http://127.0.0.1:1/wms", type: "OGC:WMS", title: "Test WMS" });
    serviceId = svc.id;
    await s.recordHarvest(serviceId, {
      ok: true,
      layers: [
        layer(1, { title: "Hurricane tracks", abstract: "Atlantic storms", keywords: ["weather", "storms"], timeStart: day("2013-03-01"), timeEnd: day("2013-03-10") }),
        layer(2, { title: "Roads of Boston", keywords: ["transport"], bbox: [-71.2, 42.2, -70.9, 42.5], owner: "bob", timeStart: day("2013-06-01"), timeEnd: day("2013-06-02") }),
        layer(3, { title: "Rivers", abstract: "hydrography of storms basins", keywords: ["water", "weather"], bbox: [10, 40, 20, 50] }),
        layer(4, { title: "Ünïcode Straße", bbox: null }),
      ],
    });
  });
  afterAll(async () => drop?.());

  it("adds a service once per url and type, and lists its layers", async () => {
    const again = await s.addService({ url: "http://127.0.0.1:1/wms", type: "OGC:WMS" });
    expect(again.id).toBe(serviceId);
    const layers = await s.listLayers(serviceId);
    expect(layers.map((l) => l.name)).toEqual(["layer1", "layer2", "layer3", "layer4"]);
    expect(layers[0]!.keywords).toEqual(["weather", "storms"]);
    expect(layers[3]!.bbox).toBeNull();
    const svc = await s.getService(serviceId);
    expect(svc).toMatchObject({ harvestOk: true, layerCount: 4 });
  });

  it("searches text with prefixes over title, abstract and keywords, all words required", async () => {
    expect((await s.search({ text: "storm", limit: 10, offset: 0 })).docs.map((d) => d.name).sort()).toEqual(["layer1", "layer3"]);
    expect((await s.search({ text: "storms hurricane", limit: 10, offset: 0 })).docs.map((d) => d.name)).toEqual(["layer1"]);
    expect((await s.search({ text: "strasse", limit: 10, offset: 0 })).total).toBe(0);
    expect((await s.search({ text: "straße", limit: 10, offset: 0 })).total).toBe(1);
    // Query syntax of either engine is only words here: quotes, operators and parentheses are dropped.
    expect((await s.search({ text: `"roads" (* -`, limit: 10, offset: 0 })).docs.map((d) => d.name)).toEqual(["layer2"]);
    expect((await s.search({ text: "!!!", limit: 10, offset: 0 })).total).toBe(0);
  });

  it("filters by bbox exactly, by time overlap, by user", async () => {
    const boston = await s.search({ bbox: [-72, 42, -70, 43], limit: 10, offset: 0 });
    expect(boston.docs.map((d) => d.name)).toEqual(["layer2"]);
    // Touching edges intersect; a box just beyond does not.
    expect((await s.search({ bbox: [2, 2, 2.5, 2.5], limit: 10, offset: 0 })).docs.map((d) => d.name)).toEqual(["layer1"]);
    expect((await s.search({ bbox: [2.0001, 2.0001, 2.5, 2.5], limit: 10, offset: 0 })).total).toBe(0);
    const march = await s.search({ timeFrom: day("2013-03-05"), timeTo: day("2013-04-01"), limit: 10, offset: 0 });
    expect(march.docs.map((d) => d.name)).toEqual(["layer1"]);
    const open = await s.search({ timeFrom: day("2013-05-01"), limit: 10, offset: 0 });
    expect(open.docs.map((d) => d.name)).toEqual(["layer2"]);
    expect((await s.search({ user: "bob", limit: 10, offset: 0 })).docs.map((d) => d.name)).toEqual(["layer2"]);
    const all = await s.search({ text: "weather", bbox: [0, 0, 30, 60], timeFrom: day("2013-01-01"), limit: 10, offset: 0 });
    expect(all.docs.map((d) => d.name)).toEqual(["layer1"]);
  });

  it("pages and sorts", async () => {
    const p1 = await s.search({ limit: 2, offset: 0, sort: "title", sortDir: "asc" });
    const p2 = await s.search({ limit: 2, offset: 2, sort: "title", sortDir: "asc" });
    expect(p1.total).toBe(4);
    expect([...p1.docs, ...p2.docs].map((d) => d.title)).toEqual(["Hurricane tracks", "Rivers", "Roads of Boston", "Ünïcode Straße"]);
    const none = await s.search({ limit: 0, offset: 0 });
    expect(none).toMatchObject({ total: 4, docs: [] });
  });

  it("computes facets: time histogram, heatmap, keywords, users", async () => {
    const r = await s.search(
      { limit: 0, offset: 0 },
      { time: { start: day("2013-01-01"), end: day("2014-01-01"), gap: "P1M" }, heatmap: { bbox: [-180, -90, 180, 90], columns: 4, rows: 2 }, textLimit: 2, userLimit: 5 },
    );
    expect(r.facets.time!.counts).toHaveLength(12);
    expect(r.facets.time!.counts[2]).toEqual({ value: "2013-03-01T00:00:00.000Z", count: 1 });
    expect(r.facets.time!.counts[5]).toEqual({ value: "2013-06-01T00:00:00.000Z", count: 1 });
    expect(r.facets.time!.counts.reduce((a, b) => a + b.count, 0)).toBe(2);
    const daily = await s.search({ limit: 0, offset: 0 }, { time: { start: day("2013-03-01"), end: day("2013-03-03"), gap: "PT12H" } });
    expect(daily.facets.time!.counts.map((c) => c.count)).toEqual([1, 0, 0, 0]);
    const grid = r.facets.heatmap!.counts_ints2D!;
    expect(grid.flat().reduce((a, b) => a + b, 0)).toBe(3);
    expect(grid[0]![1]).toBe(1); // Boston: north-west quadrant's eastern column
    expect(grid[0]![2]).toBe(2); // layer1 (1.5, 1.5) and layer3 (15, 45)
    expect(r.facets.text).toEqual([{ value: "weather", count: 2 }, { value: "storms", count: 1 }]);
    expect(r.facets.user).toEqual([{ value: "alice", count: 3 }, { value: "bob", count: 1 }]);
  });

  it("re-harvest replaces layers, keeps ids of the ones that stay, updates the index", async () => {
    const before = await s.listLayers(serviceId);
    await s.recordHarvest(serviceId, { ok: true, layers: [layer(1, { title: "Cyclone tracks" }), layer(5, { title: "Glaciers" })] });
    const after = await s.listLayers(serviceId);
    expect(after.map((l) => l.name)).toEqual(["layer1", "layer5"]);
    expect(after[0]!.id).toBe(before[0]!.id);
    expect((await s.search({ text: "hurricane", limit: 5, offset: 0 })).total).toBe(0);
    expect((await s.search({ text: "cyclone", limit: 5, offset: 0 })).total).toBe(1);
    expect((await s.search({ text: "roads", limit: 5, offset: 0 })).total).toBe(0);
    await s.recordHarvest(serviceId, { ok: false, error: "HTTP 500" });
    expect(await s.getService(serviceId)).toMatchObject({ harvestOk: false, harvestError: "HTTP 500", layerCount: 2 });
  });

  it("records checks with reliability and recent reliability over the last N", async () => {
    const [l] = await s.listLayers(serviceId);
    const outcomes = [true, true, false, true, false, false];
    for (const ok of outcomes) await s.addCheck({ serviceId, layerId: l!.id, ok, responseMs: 12.5 }, 3);
    await s.addCheck({ serviceId, ok: true, responseMs: 3 }, 3);
    const got = await s.getLayer(l!.id);
    expect(got).toMatchObject({ checksTotal: 6, checksOk: 3, reliability: 50, recentReliability: 33.33 });
    expect(await s.getService(serviceId)).toMatchObject({ checksTotal: 1, reliability: 100, recentReliability: 100 });
    const checks = await s.listChecks({ serviceId, layerId: l!.id }, 4);
    expect(checks.map((c) => c.ok)).toEqual([false, true, false, false]);
    const sorted = await s.search({ limit: 1, offset: 0, sort: "reliability", sortDir: "desc" });
    expect(sorted.docs[0]!.id).toBe(l!.id);
    await s.setMonitored({ layerId: l!.id }, false);
    expect((await s.getLayer(l!.id))!.monitored).toBe(false);
  });

  it("stand-alone records: upsert and delete by identifier", async () => {
    await s.upsertRecords([layer(100, { title: "Catalogue record", type: "dataset" })]);
    expect((await s.getLayerByIdentifier("urn:test:100"))!.serviceId).toBeNull();
    await s.upsertRecords([layer(100, { title: "Catalogue record v2", type: "dataset" })]);
    expect((await s.getLayerByIdentifier("urn:test:100"))!.title).toBe("Catalogue record v2");
    expect(await s.deleteRecords(["urn:test:100", "urn:nope"])).toBe(1);
    expect(await s.getLayerByIdentifier("urn:test:100")).toBeUndefined();
  });

  it("claims a schedule period exactly once among concurrent callers", async () => {
    const now = Date.now();
    const claims = await Promise.all(Array.from({ length: 8 }, () => s.claimPeriod("checks", 60_000, now)));
    expect(claims.filter(Boolean)).toHaveLength(1);
    expect(await s.claimPeriod("checks", 60_000, now + 30_000)).toBe(false);
    expect(await s.claimPeriod("checks", 60_000, now + 60_000)).toBe(true);
  });

  it("leases at most `slots` request slots per host among concurrent callers; a released or expired slot is taken again", async () => {
    const now = Date.now();
    const got = await Promise.all(Array.from({ length: 6 }, (_, i) => s.acquireHostSlot("a.test:80", 2, `w${i}`, 10_000, now)));
    expect(got.filter((x) => x !== undefined).sort()).toEqual([0, 1]);
    expect(await s.acquireHostSlot("b.test:80", 2, "w9", 10_000, now)).toBe(0); // another host has its own slots
    const holder = `w${got.indexOf(0)}`;
    await s.releaseHostSlot("a.test:80", 0, "someone else"); // only its holder releases a slot
    expect(await s.acquireHostSlot("a.test:80", 2, "x", 10_000, now)).toBeUndefined();
    await s.releaseHostSlot("a.test:80", 0, holder);
    expect(await s.acquireHostSlot("a.test:80", 2, "x", 10_000, now)).toBe(0);
    // A holder that died leaves its slot to expire.
    expect(await s.acquireHostSlot("a.test:80", 2, "y", 10_000, now + 10_001)).toBe(0);
  });
});
