import { existsSync, mkdirSync } from "node:fs";
import { join } from "node:path";
import type { FastifyInstance } from "fastify";
import { chromium } from "playwright-core";
import type { Browser } from "playwright-core";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { buildServer } from "../src/index.js";
import type { Registry } from "../src/index.js";
import { env, tmpRegistry } from "./helpers.js";

const ARTIFACTS = join(import.meta.dirname, "..", "test-artifacts");
const CHROMIUM = "/usr/bin/chromium";

describe("web UI in headless Chromium", () => {
  let reg: Registry;
  let app: FastifyInstance;
  let base: string;
  let browser: Browser;
  let wms: number;
  let wmts: number;

  beforeAll(async () => {
    if (!existsSync(CHROMIUM)) throw new Error(`${CHROMIUM} is missing: apt-get install chromium`);
    if (!existsSync(join(import.meta.dirname, "..", "dist", "ui", "app.js"))) throw new Error("the UI bundle is not built: pnpm -s turbo run build --filter @geowatch/registry");
    mkdirSync(ARTIFACTS, { recursive: true });
    reg = await tmpRegistry();
    const [a] = await reg.add(env.qgis(), { type: "OGC:WMS", enqueue: false });
    const [b] = await reg.add(`${env.mapproxy()}/wmts/1.0.0/WMTSCapabilities.xml`, { type: "OGC:WMTS", enqueue: false });
    wms = a!.id;
    wmts = b!.id;
    for (const id of [wms, wmts]) {
      await reg.apply(await reg.harvestUpdate(id));
      for (let i = 0; i < 3; i++) await reg.apply(await reg.checkUpdate(id));
    }
    // One failed check in the history, so the chart has both colours.
    await reg.apply({ kind: "checks", checks: [{ serviceId: wms, ok: false, responseMs: 30_000, message: "timeout" }] });
    app = await buildServer(reg);
    base = await app.listen({ host: "127.0.0.1", port: 0 });
    browser = await chromium.launch({ executablePath: CHROMIUM, args: ["--no-sandbox"] });
  });
  afterAll(async () => {
    await browser?.close();
    await app?.close();
    await reg?.close();
  });

  it("search page: map, results with reliability, text search", async () => {
    const page = await browser.newPage({ viewport: { width: 1100, height: 900 } });
    const errors: string[] = [];
    page.on("pageerror", (e) => errors.push(e.message));
    await page.goto(`${base}/`);
    await page.waitForSelector("#results li.result");
    expect(await page.locator("#count").textContent()).toBe("3 layers");
    expect(await page.locator(".leaflet-container").count()).toBe(1);
    expect(await page.locator("#results .rel").first().getAttribute("data-reliability")).toBe("100");
    await page.fill("#q", "debug");
    await page.click("#search button");
    await page.waitForFunction(() => document.querySelector("#count")?.textContent === "1 layers");
    expect(await page.locator("#results li").textContent()).toContain("Debug grid tiles");
    await page.screenshot({ path: join(ARTIFACTS, "search.png"), fullPage: true });
    expect(errors).toEqual([]);
    await page.close();
  });

  it("service page: uptime chart with up and down checks, the layer drawn from its own WMS", async () => {
    const page = await browser.newPage({ viewport: { width: 1100, height: 1100 } });
    const tiles: string[] = [];
    page.on("response", (r) => {
      if (/request=GetMap/i.test(r.url()) && r.status() === 200 && r.headers()["content-type"] === "image/png") tiles.push(r.url());
    });
    const layer = (await reg.storage.listLayers(wms)).find((l) => l.name === "cells")!;
    await page.goto(`${base}/services/${wms}#layer-${layer.id}`);
    await page.waitForSelector("#uptime rect");
    expect(await page.locator("#uptime rect.up").count()).toBe(3);
    expect(await page.locator("#uptime rect.down").count()).toBe(1);
    await page.waitForFunction(() => document.querySelectorAll("img.leaflet-tile-loaded").length > 0, undefined, { timeout: 30_000 });
    expect(tiles.length).toBeGreaterThan(0);
    expect(tiles[0]).toMatch(/layers=cells/i);
    expect(await page.locator(`li#layer-${layer.id}.shown`).count()).toBe(1);
    await page.screenshot({ path: join(ARTIFACTS, "service-wms.png"), fullPage: true });
    await page.close();
  });

  it("service page of a WMTS: tiles from its RESTful template", async () => {
    const page = await browser.newPage({ viewport: { width: 1100, height: 1100 } });
    const tiles: string[] = [];
    page.on("response", (r) => {
      if (r.url().includes("/wmts/") && r.status() === 200 && (r.headers()["content-type"] ?? "").startsWith("image/")) tiles.push(r.url());
    });
    await page.goto(`${base}/services/${wmts}`);
    await page.waitForFunction(() => document.querySelectorAll("img.leaflet-tile-loaded").length > 0, undefined, { timeout: 30_000 });
    expect(tiles.length).toBeGreaterThan(0);
    await page.screenshot({ path: join(ARTIFACTS, "service-wmts.png"), fullPage: true });
    await page.close();
  });
});
