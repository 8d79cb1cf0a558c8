import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { HostLimiter } from "../src/index.js";
import type { Registry } from "../src/index.js";
import { env, fixtureServer, png, tmpRegistry } from "./helpers.js";

describe("checks against real servers", () => {
  let reg: Registry;
  beforeAll(async () => {
    reg = await tmpRegistry({ checks: { recent: 2 } });
  });
  afterAll(async () => reg?.close());

  it.each([
    ["QGIS WMS", () => env.qgis(), "OGC:WMS", "png 256x256"],
    ["MapServer WMS (time)", () => env.mapserver(), "OGC:WMS", "png 256x256"],
    ["QGIS WMTS", () => env.qgis(), "OGC:WMTS", "png 256x256"],
    ["MapProxy WMTS REST", () => `${env.mapproxy()}/wmts/1.0.0/WMTSCapabilities.xml`, "OGC:WMTS", "png 256x256"],
    ["MapProxy TMS", () => `${env.mapproxy()}/tms/1.0.0/`, "OSGeo:TMS", "png 256x256"],
    ["MapServer WFS 2.0", () => env.mapserver(), "OGC:WFS", "FeatureCollection"],
    ["QGIS WFS 1.1", () => env.qgis(), "OGC:WFS", "FeatureCollection"],
    ["MapServer OGC API", () => `${env.mapserver()}/registry/ogcapi`, "OGC:API-Features", "JSON"],
    ["Koop FeatureServer", () => env.koop(), "ESRI:ArcGIS:FeatureServer", "JSON"],
  ] as const)("%s: service and every layer checked, all up", async (_name, url, type, layerMessage) => {
    const [s] = await reg.add(url(), { type, enqueue: false });
    await reg.apply(await reg.harvestUpdate(s!.id));
    const u = await reg.checkUpdate(s!.id);
    if (u.kind !== "checks") throw new Error("expected checks");
    const layers = await reg.storage.listLayers(s!.id);
    expect(layers.length).toBeGreaterThan(0);
    expect(u.checks).toHaveLength(1 + layers.length);
    for (const c of u.checks) expect(c, c.message).toMatchObject({ ok: true });
    for (const c of u.checks.slice(1)) expect(c.message).toContain(layerMessage);
    expect(u.checks.every((c) => c.responseMs > 0)).toBe(true);
    await reg.apply(u);
    expect(await reg.storage.getService(s!.id)).toMatchObject({ reliability: 100, checksTotal: 1 });
  });

  it("a layer the server does not have fails its check with the server's reason; reliability and recent reliability follow", async () => {
    const [s] = await reg.add(env.qgis(), { type: "OGC:WMS", enqueue: false });
    await reg.apply(await reg.harvestUpdate(s!.id));
    const cells = (await reg.storage.listLayers(s!.id)).find((l) => l.name === "cells")!;
    await reg.apply({ kind: "checks", checks: [{ serviceId: s!.id, layerId: cells.id, ok: true, responseMs: 5 }] });
    const before = (await reg.storage.getLayer(cells.id))!;
    expect(before.checksOk).toBe(before.checksTotal);
    // Pretend the layer was renamed on the server: the stored name no longer exists there.
    await reg.storage.recordHarvest(s!.id, { ok: true, layers: (await reg.storage.listLayers(s!.id)).map((l) => ({ ...l, name: l.name === "cells" ? "gone" : l.name, abstract: l.abstract })) });
    const u = await reg.checkUpdate(s!.id);
    if (u.kind !== "checks") throw new Error("expected checks");
    const bad = u.checks.find((c) => c.layerId === cells.id)!;
    expect(bad.ok).toBe(false);
    expect(bad.message).toMatch(/^HTTP 400: .*LayerNotDefined/);
    await reg.apply(u);
    const after = (await reg.storage.getLayer(cells.id))!;
    expect(after).toMatchObject({ checksTotal: before.checksTotal + 1, checksOk: before.checksOk, recentReliability: 50 });
    expect(after.reliability).toBeCloseTo((before.checksOk / (before.checksTotal + 1)) * 100, 1);
  });

  it("an image of the wrong size or type fails", async () => {
    const srv = await fixtureServer((req, url) => {
      if (url.searchParams.get("REQUEST") === "GetCapabilities") {
        return {
          type: "text/xml",
          body: `<WMS_Capabilities version="1.3.0"><Service><Title>t</Title></Service><Capability><Request><GetMap><Format>image/png</Format><DCPType><HTTP><Get><OnlineResource href="http://${req.headers.host}/wms?"/></Get></HTTP></DCPType></GetMap></Request><Layer><Name>small</Name><Title>small</Title></Layer><Layer><Name>text</Name><Title>text</Title></Layer></Capability></WMS_Capabilities>`,
        };
      }
      if (url.searchParams.get("LAYERS") === "small") return { type: "image/png", body: png(64, 64) };
      return { type: "image/png", body: "oops" };
    });
    try {
      const [s] = await reg.add(`${srv.url}/wms`, { type: "OGC:WMS", enqueue: false });
      await reg.apply(await reg.harvestUpdate(s!.id));
      const u = await reg.checkUpdate(s!.id);
      if (u.kind !== "checks") throw new Error("expected checks");
      expect(u.checks.map((c) => [c.ok, c.message]), JSON.stringify(u.checks)).toEqual([
        [true, expect.stringContaining("WMS_Capabilities")],
        [false, "image is 64x64, asked 256x256"],
        [false, expect.stringContaining("not an image")],
      ]);
    } finally {
      await srv.close();
    }
  });
});

describe("bounded concurrency per host", () => {
  it("never runs more than perHost requests at once against one host, while other hosts proceed", async () => {
    const limiter = new HostLimiter(2, 16);
    let activeA = 0;
    let maxA = 0;
    const job = (host: string) =>
      limiter.run(`http://${host}/x`, async () => {
        if (host === "a.test") maxA = Math.max(maxA, ++activeA);
        await new Promise((r) => setTimeout(r, 5));
        if (host === "a.test") activeA--;
      });
    await Promise.all([...Array.from({ length: 30 }, () => job("a.test")), ...Array.from({ length: 10 }, () => job("b.test"))]);
    expect(maxA).toBe(2);
    expect(limiter.peak.get("a.test")).toBe(2);
    expect(limiter.peak.get("b.test")).toBe(2);
  });

  it("a registry checking 40 layers of one server keeps to checks.perHost", async () => {
    let active = 0;
    let peak = 0;
    const layers = Array.from({ length: 40 }, (_, i) => `<Layer><Name>l${i}</Name><Title>l${i}</Title></Layer>`).join("");
    const srv = await fixtureServer((_req, url) => {
      if (url.searchParams.get("REQUEST") === "GetCapabilities") {
        return { type: "text/xml", body: `<WMS_Capabilities version="1.3.0"><Service><Title>t</Title></Service><Capability><Layer>${layers}</Layer></Capability></WMS_Capabilities>` };
      }
      return { type: "image/png", body: png(256, 256) };
    });
    const reg = await tmpRegistry({ checks: { perHost: 3 } });
    try {
      const [s] = await reg.add(`${srv.url}/wms`, { type: "OGC:WMS", enqueue: false });
      await reg.apply(await reg.harvestUpdate(s!.id));
      const origGet = reg.fetcher.get.bind(reg.fetcher);
      (reg.fetcher as { get: typeof origGet }).get = async (...args) => {
        peak = Math.max(peak, ++active);
        await new Promise((r) => setTimeout(r, 10));
        try {
          return await origGet(...args);
        } finally {
          active--;
        }
      };
      const u = await reg.checkUpdate(s!.id);
      expect(u.kind === "checks" && u.checks.filter((c) => c.ok)).toHaveLength(41);
      expect(peak).toBe(3);
    } finally {
      await reg.close();
      await srv.close();
    }
  });
});
