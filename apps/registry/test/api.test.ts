import { execFile } from "node:child_process";
import { join } from "node:path";
import { pathToFileURL } from "node:url";
import { promisify } from "node:util";
import type { FastifyInstance } from "fastify";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { buildServer, Registry, resolveConfig } from "../src/index.js";
import type { LayerInput } from "../src/index.js";
import { silentLogger } from "@geowatch/core";
import { freshStorage } from "./engines.js";
import { env, tmpRegistry } from "./helpers.js";

const day = (s: string) => Date.parse(`${s}T00:00:00Z`);
const run = promisify(execFile);

describe("Search API (Hypermap parameters and response shape)", () => {
  let reg: Registry;
  let app: FastifyInstance;
  beforeAll(async () => {
    reg = await tmpRegistry({ csw: { password: "pw" } });
    const layers: LayerInput[] = Array.from({ length: 30 }, (_, i) => ({
      identifier: `urn:api:${i}`,
      name: `l${i}`,
      title: i % 2 ? `Flood map ${i}` : `Census tract ${i}`,
      abstract: i % 3 ? "" : "hydrology",
      keywords: i % 2 ? ["flood", "water"] : ["census"],
      bbox: [-100 + i, 30, -99 + i, 31],
      timeStart: day(`2013-0${(i % 9) + 1}-01`),
      timeEnd: day(`2013-0${(i % 9) + 1}-02`),
      type: "OGC:WMS",
      url: "http://example.test/wms",
      owner: i % 5 ? "alice" : "bob",
    }));
    await reg.storage.upsertRecords(layers);
    app = await buildServer(reg);
  });
  afterAll(async () => {
    await app.close();
    await reg.close();
  });

  const search = async (q: Record<string, string>) => {
    const r = await app.inject({ url: `/api/search?${new URLSearchParams(q)}` });
    return { status: r.statusCode, body: r.json() as Record<string, unknown> };
  };

  it("returns a.matchDocs and d.docs with Hypermap's field names; d.docs.limit defaults to 10, not 0", async () => {
    const { status, body } = await search({ "q.text": "flood" });
    expect(status).toBe(200);
    expect(body["a.matchDocs"]).toBe(15);
    const docs = body["d.docs"] as Record<string, unknown>[];
    expect(docs).toHaveLength(10);
    expect(docs[0]).toMatchObject({ type: "Layer", service_type: "OGC:WMS", layer_username: expect.any(String), bbox: expect.stringMatching(/^ENVELOPE\(/), reliability: null });
  });

  it("q.geo is [minLat,minLon TO maxLat,maxLon]; q.time ranges with * open; q.user; paging and sorting", async () => {
    const geo = await search({ "q.geo": "[30,-100 TO 31,-97.5]", "d.docs.limit": "50" });
    expect((geo.body["d.docs"] as { name: string }[]).map((d) => d.name).sort()).toEqual(["l0", "l1", "l2"]);
    const time = await search({ "q.time": "[2013-09-01 TO *]", "d.docs.limit": "50" });
    expect(time.body["a.matchDocs"]).toBe(3);
    const user = await search({ "q.user": "bob", "d.docs.limit": "0" });
    expect(user.body).toMatchObject({ "a.matchDocs": 6, "d.docs": [] });
    const p2 = await search({ "d.docs.sort": "title asc", "d.docs.limit": "5", "d.docs.page": "2" });
    expect((p2.body["d.docs"] as { title: string }[]).map((d) => d.title)).toEqual(["Census tract 18", "Census tract 2", "Census tract 20", "Census tract 22", "Census tract 24"]);
    const dist = await search({ "q.geo": "[-90,-180 TO 90,180]", "d.docs.sort": "distance", "d.docs.limit": "1" });
    expect((dist.body["d.docs"] as { name: string }[])[0]!.name).toBe("l29");
  });

  it("facets: a.time histogram, a.hm heatmap, a.text keywords, a.user owners", async () => {
    const { body } = await search({ "a.time.limit": "12", "a.time.filter": "[2013-01-01 TO 2014-01-01]", "a.time.gap": "P1M", "a.hm.limit": "64", "a.text.limit": "2", "a.user.limit": "5", "d.docs.limit": "0" });
    const t = body["a.time"] as { gap: string; counts: { value: string; count: number }[] };
    expect(t.gap).toBe("P1M");
    expect(t.counts).toHaveLength(12);
    expect(t.counts.slice(0, 9).map((c) => c.count)).toEqual([4, 4, 4, 3, 3, 3, 3, 3, 3]);
    const hm = body["a.hm"] as { columns: number; rows: number; counts_ints2D: number[][] };
    expect(hm.columns * hm.rows).toBeLessThanOrEqual(64);
    expect(hm.counts_ints2D.flat().reduce((a, b) => a + b, 0)).toBe(30);
    expect(body["a.text"]).toEqual([{ value: "census", count: 15 }, { value: "flood", count: 15 }]);
    expect(body["a.user"]).toEqual([{ value: "alice", count: 24 }, { value: "bob", count: 6 }]);
  });

  it("answers 400 with the parameter for malformed input", async () => {
    for (const [k, v, msg] of [
      ["q.geo", "[1,2,3]", "q.geo"],
      ["q.time", "yesterday", "q.time"],
      ["d.docs.limit", "-1", "d.docs.limit"],
      ["d.docs.sort", "colour", "d.docs.sort"],
      ["a.time.gap", "P1Q", "a.time.gap"],
    ] as const) {
      const r = await search({ [k]: v, ...(k === "a.time.gap" ? { "a.time.limit": "10", "a.time.filter": "[2013 TO 2014]" } : {}) });
      expect(r.status, `${k}=${v}`).toBe(400);
      expect(String(r.body.message)).toContain(msg);
    }
  });

  it("the old Hypermap path answers the same", async () => {
    const r = await app.inject({ url: "/registry/api/search?q.text=census&d.docs.limit=1" });
    expect(r.json()["a.matchDocs"]).toBe(15);
  });

  it("adding a service needs the admin credentials; a refused URL is 403 with the reason", async () => {
    const anon = await app.inject({ method: "POST", url: "/api/services", payload: { url: "http://example.test/wms" } });
    expect(anon.statusCode).toBe(401);
    const auth = { authorization: `Basic ${Buffer.from("admin:pw").toString("base64")}` };
    const bad = await app.inject({ method: "POST", url: "/api/services", headers: auth, payload: { url: "http://example.test/wms", type: "OGC:Nope" } });
    expect(bad.statusCode).toBe(400);
    const strict = await tmpRegistry({ urlPolicy: { allowPrivate: false }, csw: { password: "pw" } });
    const app2 = await buildServer(strict);
    try {
      const refused = await app2.inject({ method: "POST", url: "/api/services", headers: auth, payload: { url: "http://127.0.0.1:9/wms", type: "OGC:WMS" } });
      expect(refused.statusCode).toBe(403);
      expect(refused.json()).toMatchObject({ error: "URL_REFUSED" });
    } finally {
      await app2.close();
      await strict.close();
    }
  });
});

describe("jobs on the queue, the index buffer and the scheduler", () => {
  it("an added service is harvested and checked by a worker through the job channel and the buffer", async () => {
    const reg = await tmpRegistry();
    try {
      const [s] = await reg.add(env.qgis(), { type: "OGC:WMS" });
      expect(reg.stats().jobs!.ready).toBe(1);
      // The HTTP side only enqueued: nothing is indexed yet.
      expect(await reg.storage.listLayers(s!.id)).toEqual([]);
      const counts = await reg.work({ untilIdle: true });
      expect(counts).toEqual({ jobs: 1, updates: 1 });
      expect((await reg.storage.listLayers(s!.id)).map((l) => l.name).sort()).toEqual(["cells", "registry"]);
      await reg.enqueue([{ kind: "check", serviceId: s!.id }]);
      await reg.work({ untilIdle: true });
      expect(await reg.storage.getService(s!.id)).toMatchObject({ checksTotal: 1, reliability: 100 });
      expect((await reg.storage.listLayers(s!.id)).every((l) => l.checksTotal === 1 && l.reliability === 100)).toBe(true);
      expect(reg.stats()).toMatchObject({ jobs: { ready: 0, inFlight: 0, dead: 0 }, buffer: { ready: 0, inFlight: 0, dead: 0 } });
    } finally {
      await reg.close();
    }
  });

  it("the same flow on PostgreSQL + PostGIS: harvest, check and search through a worker", async () => {
    const { storage, drop } = await freshStorage("postgres");
    const reg = await tmpRegistry({}, storage);
    try {
      const [s] = await reg.add(`${env.mapserver()}/registry/ogcapi`, { type: "OGC:API-Features" });
      await reg.enqueue([{ kind: "check", serviceId: s!.id }]);
      await reg.work({ untilIdle: true });
      await reg.enqueue([{ kind: "check", serviceId: s!.id }]);
      await reg.work({ untilIdle: true });
      const found = await reg.storage.search({ text: "cells", bbox: [0, 0, 10, 10], limit: 10, offset: 0 });
      expect(found.docs.map((d) => d.title)).toEqual(["Cells over time"]);
      expect(found.docs[0]).toMatchObject({ checksTotal: expect.any(Number), reliability: 100 });
      expect(await reg.storage.getService(s!.id)).toMatchObject({ harvestOk: true, reliability: 100 });
    } finally {
      await reg.close();
      await drop();
    }
  });

  it("exactly one of several registries sharing the storage and the queue emits a period's jobs", async () => {
    const first = await tmpRegistry({ checks: { intervalMs: 60_000 }, harvest: { intervalMs: 3_600_000 } });
    try {
      const [s] = await first.add(env.qgis(), { type: "OGC:WMS", enqueue: false });
      await first.apply(await first.harvestUpdate(s!.id));
      // Four more processes' worth of registries on the same files.
      const others = await Promise.all(
        Array.from({ length: 4 }, () => new Registry(resolveConfig({ ...first.config, urlPolicy: first.config.urlPolicy }, "/", {}), { logger: silentLogger }).init()),
      );
      try {
        const now = Date.now();
        const emitted = await Promise.all([first, ...others].map((r) => r.scheduleTick(now)));
        // One check job and one harvest job in all (each schedule claimed by exactly one registry).
        expect(emitted.reduce((a, b) => a + b, 0)).toBe(2);
        expect(first.stats().jobs!.ready).toBe(2);
        expect((await Promise.all([first, ...others].map((r) => r.scheduleTick(now + 1000)))).every((n) => n === 0)).toBe(true);
        // The next check period (but not the harvest one) is emitted once more.
        expect((await Promise.all([first, ...others].map((r) => r.scheduleTick(now + 61_000)))).filter((n) => n > 0)).toEqual([1]);
      } finally {
        for (const o of others) await o.close();
      }
    } finally {
      await first.close();
    }
  });

  it("exactly one of four processes claims a period (the CLI's code path, separate processes on one SQLite file)", async () => {
    const first = await tmpRegistry({ checks: { intervalMs: 60_000 } });
    try {
      const [s] = await first.add(env.qgis(), { type: "OGC:WMS", enqueue: false });
      await first.apply(await first.harvestUpdate(s!.id));
      const dist = join(import.meta.dirname, "..", "dist", "index.js");
      const script = `
        const { Registry, resolveConfig } = await import(${JSON.stringify(pathToFileURL(dist).href)});
        const { silentLogger } = await import("@geowatch/core");
        const r = await new Registry(resolveConfig(JSON.parse(process.argv[1]), "/", {}), { logger: silentLogger }).init();
        const at = Number(process.argv[2]);
        while (Date.now() < at) await new Promise((res) => setTimeout(res, 1));
        process.stdout.write(String(await r.scheduleTick(at)));
        await r.close();`;
      const at = Date.now() + 1500;
      const outs = await Promise.all(
        Array.from({ length: 4 }, () => run(process.execPath, ["--input-type=module", "-e", script, JSON.stringify(first.config), String(at)], { cwd: join(import.meta.dirname, "..") })),
      );
      const emitted = outs.map((o) => Number(o.stdout));
      expect(emitted.reduce((a, b) => a + b, 0)).toBe(2); // one check job, one harvest job, from whoever won each claim
      expect(emitted.filter((n) => n > 0).length).toBeGreaterThanOrEqual(1);
      expect(first.stats().jobs!.ready).toBe(2);
    } finally {
      await first.close();
    }
  });

  it("a job whose service is gone is dropped with its reason, not retried for ever", async () => {
    const reg = await tmpRegistry();
    try {
      await reg.enqueue([{ kind: "check", serviceId: 999 }]);
      const counts = await reg.work({ untilIdle: true });
      expect(counts.jobs).toBe(1);
      expect(reg.stats().jobs).toMatchObject({ ready: 0, dead: 1 });
    } finally {
      await reg.close();
    }
  });
});
