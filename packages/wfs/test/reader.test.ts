import { afterEach, describe, expect, it } from "vitest";
import { isGeoWatchError } from "@geowatch/core";
import { requireEnv } from "@geowatch/testkit";
import { wfsBackend } from "../src/index.js";
import { layerReader, readAll, readStore } from "../src/reader.js";
import type { Feature } from "../src/gml-common.js";
import { fakeServer, mapserverUrl } from "./reader-helpers.js";
import type { FakeServer } from "./reader-helpers.js";

const coords = (f: Feature) => (f.geometry as { coordinates: unknown }).coordinates;
const byNum = (fs: Feature[]) => new Map(fs.map((f) => [Number(f.properties!.num), f]));

describe("WFS reader on MapServer 8", () => {
  it("pages through 3000 points with count/startIndex (2.0.0) and maxFeatures/startIndex (1.1.0), total from hits", async () => {
    for (const [version, typeName] of [["2.0.0", "ms:points"], ["1.1.0", "points"]] as const) {
      const reader = layerReader({ url: mapserverUrl(), allowPrivate: true, version, typeName, pageSize: 700 });
      expect(await reader.hits(), `${version}: hits`).toBe(3000);
      const sizes: number[] = [];
      const all: Feature[] = [];
      for await (const page of reader.pages()) {
        expect(page.total).toBe(3000);
        sizes.push(page.features.length);
        all.push(...page.features);
      }
      expect(sizes, `${version}: page sizes`).toEqual([700, 700, 700, 700, 200]);
      expect(new Set(all.map((f) => f.properties!.num)).size, `${version}: every feature once`).toBe(3000);
    }
  });

  it("GeoJSON (offered in the capabilities) and GML give the same features, longitude first, for every geometry type", async () => {
    for (const [version, layer] of [["2.0.0", "points"], ["2.0.0", "lines"], ["2.0.0", "polygons"], ["1.1.0", "points"], ["1.1.0", "polygons"]] as const) {
      const typeName = version === "2.0.0" ? `ms:${layer}` : layer;
      const o = { url: mapserverUrl(), allowPrivate: true, version, typeName, pageSize: 5000, maxFeatures: 300 };
      const json = byNum(await readAll(layerReader({ ...o, outputFormat: "geojson" })));
      const gml = byNum(await readAll(layerReader({ ...o, outputFormat: "gml" })));
      expect(json.size, `${version} ${layer}: features read`).toBeGreaterThan(0);
      expect([...gml.keys()].sort(), `${version} ${layer}: same features`).toEqual([...json.keys()].sort());
      for (const [num, f] of json) {
        const g = gml.get(num)!;
        // MapServer writes polygons as MultiSurface in GML; compare the rings.
        const flat = (c: unknown) => JSON.stringify(c).replace(/\[\[\[\[/g, "[[[").replace(/\]\]\]\]/g, "]]]");
        expect(flat(coords(g)), `${version} ${layer} #${num} coordinates`).toBe(flat(coords(f)));
        expect(g.properties!.name ?? g.properties!.shape).toEqual(f.properties!.name ?? f.properties!.shape);
      }
      if (layer === "points") {
        const p7 = json.get(7)!;
        expect(coords(p7), "lon, lat").toEqual([-8.6, 40]);
        expect(gml.get(7)!.properties!.name, "escaped text decoded").toBe("Zürich & <7>");
      }
    }
  });

  it("id_field sets each Feature's id", async () => {
    const fs = await readAll(layerReader({ url: mapserverUrl(), allowPrivate: true, version: "2.0.0", typeName: "ms:points", idField: "num", maxFeatures: 5 }));
    expect(fs.map((f) => f.id)).toEqual([1, 2, 3, 4, 5]);
  });

  it("OGC API Features: one page of 3000 with bbox; MapServer 8.0 repeating its first page is an error, not a loop of duplicates", async () => {
    const o = { url: `${mapserverUrl()}/geowatch/ogcapi`, protocol: "ogcapi" as const, allowPrivate: true, typeName: "points" };
    const all = await readAll(layerReader({ ...o, pageSize: 5000 }));
    expect(new Set(all.map((f) => f.id)).size).toBe(3000);
    const boxed = await readAll(layerReader({ ...o, bbox: [-10, 40, -5, 41], pageSize: 5000 }));
    const want = all.filter((f) => {
      const [x, y] = coords(f) as [number, number];
      return x >= -10 && x <= -5 && y >= 40 && y <= 41;
    });
    expect(boxed.length).toBeGreaterThan(0);
    expect(boxed.map((f) => f.id).sort()).toEqual(want.map((f) => f.id).sort());
    const paged = await readAll(layerReader({ ...o, pageSize: 800 })).catch((e: unknown) => e);
    expect(String(paged)).toMatch(/the next page repeats the first/);
    expect(await layerReader({ ...o, typeName: "nope" }).exists()).toBe(false);
  });

  it("readStore returns the layer as one FeatureCollection, undefined for a layer the server does not have", async () => {
    const o = { url: mapserverUrl(), allowPrivate: true, version: "2.0.0" as const, filter: { property: "kind", eq: "tree" } };
    const body = await readStore(o, "ms:points");
    const fc = JSON.parse(String(body)) as { type: string; features: Feature[] };
    expect(fc.type).toBe("FeatureCollection");
    expect(fc.features.length).toBe(750);
    expect(fc.features.every((f) => f.properties!.kind === "tree")).toBe(true);
    expect(await readStore(o, "ms:nope")).toBeUndefined();
  });

  it("without allow_private a loopback server is refused, naming the URL", async () => {
    const err = await readAll(layerReader({ url: mapserverUrl(), version: "2.0.0", typeName: "ms:points" })).catch((e: unknown) => e);
    expect(isGeoWatchError(err, "URL_REFUSED"), String(err)).toBe(true);
    expect(String(err)).toContain("127.0.0.1");
  });
});

describe("WFS reader on QGIS Server (1.1.0, GML latitude first)", () => {
  it("reads what a Transaction inserted, longitude first", async () => {
    const url = requireEnv("GEOWATCH_QGIS_URL", "Start QGIS Server: bash .ci/servers/qgis.sh start && source .servers/env/qgis.env");
    const uid = `reader-${Date.now()}`;
    const tx = `<wfs:Transaction service="WFS" version="1.1.0" xmlns:wfs="http://www.opengis.net/wfs" xmlns:gml="http://www.opengis.net/gml" xmlns:qgs="http://www.qgis.org/gml"><wfs:Insert><qgs:poll><qgs:geometry><gml:Point srsName="urn:ogc:def:crs:EPSG::4326"><gml:pos>8.5 47.25</gml:pos></gml:Point></qgs:geometry><qgs:uid>${uid}</qgs:uid><qgs:name>Zürich &amp; co</qgs:name><qgs:count>0</qgs:count></qgs:poll></wfs:Insert></wfs:Transaction>`;
    const res = await fetch(url, { method: "POST", body: tx, headers: { "content-type": "text/xml" } });
    expect(await res.text()).toMatch(/totalInserted>1</);
    const fs = await readAll(layerReader({ url, allowPrivate: true, version: "1.1.0", typeName: "poll", outputFormat: "gml", filter: { property: "uid", eq: uid } }));
    expect(fs).toHaveLength(1);
    // QGIS reads Insert positions as lon lat and writes GetFeature GML lat lon: the reader gives lon, lat.
    expect(coords(fs[0]!)).toEqual([8.5, 47.25]);
    expect(fs[0]!.properties).toMatchObject({ uid, name: "Zürich & co", count: 0 });
    expect(String(fs[0]!.id)).toMatch(/^poll\./);
  });

  it("asked for 2.0.0, QGIS answers 1.1.0: a clear error naming the version to set", async () => {
    const url = requireEnv("GEOWATCH_QGIS_URL", "Start QGIS Server: bash .ci/servers/qgis.sh start && source .servers/env/qgis.env");
    const err = await readAll(layerReader({ url, allowPrivate: true, version: "2.0.0", typeName: "poll" })).catch((e: unknown) => e);
    expect(String(err)).toMatch(/answered GetCapabilities for WFS 2\.0\.0 with version 1\.1\.0: set version: "1\.1\.0"/);
  });

  it("OGC API Features at /wfs3: follows next links page by page", async () => {
    const url = requireEnv("GEOWATCH_QGIS_URL", "Start QGIS Server: bash .ci/servers/qgis.sh start && source .servers/env/qgis.env");
    const uid = `pages-${Date.now()}`;
    const members = [0, 1, 2, 3, 4].map((i) => `<wfs:Insert><qgs:poll><qgs:geometry><gml:Point><gml:pos>${i} ${i + 10}</gml:pos></gml:Point></qgs:geometry><qgs:uid>${uid}</qgs:uid><qgs:count>${i}</qgs:count></qgs:poll></wfs:Insert>`).join("");
    const res = await fetch(url, { method: "POST", body: `<wfs:Transaction service="WFS" version="1.1.0" xmlns:wfs="http://www.opengis.net/wfs" xmlns:gml="http://www.opengis.net/gml" xmlns:qgs="http://www.qgis.org/gml">${members}</wfs:Transaction>`, headers: { "content-type": "text/xml" } });
    expect(await res.text()).toMatch(/totalInserted>5</);
    const sizes: number[] = [];
    const got: Feature[] = [];
    for await (const p of layerReader({ url: `${url}/wfs3`, protocol: "ogcapi", allowPrivate: true, typeName: "poll", pageSize: 2, filter: { property: "uid", eq: uid } }).pages()) {
      sizes.push(p.features.length);
      got.push(...p.features);
    }
    expect(sizes.slice(0, 3)).toEqual([2, 2, 1]);
    expect(got.map((f) => f.properties!.count).sort()).toEqual([0, 1, 2, 3, 4]);
    expect(coords(got.find((f) => f.properties!.count === 3)!)).toEqual([3, 13]);
  });
});

describe("OGC API Features on pygeoapi (TinyDB collection)", () => {
  it("next links page by page, bbox and a property filter over features it created", async () => {
    const base = requireEnv("GEOWATCH_PYGEOAPI_URL", "Start pygeoapi: bash .ci/servers/pygeoapi.sh start && source .servers/env/pygeoapi.env");
    const run = `reader-${Date.now()}`;
    for (let i = 0; i < 7; i++) {
      const res = await fetch(`${base}/collections/points/items`, {
        method: "POST",
        headers: { "content-type": "application/geo+json" },
        body: JSON.stringify({ type: "Feature", geometry: { type: "Point", coordinates: [i, 40 + i] }, properties: { uid: run, num: i, name: i === 3 ? "Zürich & <3>" : `n${i}` } }),
      });
      expect(res.status, "created").toBe(201);
    }
    const o = { url: base, protocol: "ogcapi" as const, allowPrivate: true, typeName: "points", filter: { property: "uid", eq: run } };
    const sizes: number[] = [];
    const all: Feature[] = [];
    for await (const p of layerReader({ ...o, pageSize: 3 }).pages()) {
      sizes.push(p.features.length);
      all.push(...p.features);
      expect(p.total).toBe(7);
    }
    expect(sizes.filter((n) => n > 0)).toEqual([3, 3, 1]);
    expect(all.map((f) => f.properties!.num).sort()).toEqual([0, 1, 2, 3, 4, 5, 6]);
    expect(all.find((f) => f.properties!.num === 3)!.properties!.name).toBe("Zürich & <3>");
    const boxed = await readAll(layerReader({ ...o, pageSize: 100, bbox: [1.5, 41.5, 4.5, 44.5] }));
    expect(boxed.map((f) => f.properties!.num).sort()).toEqual([2, 3, 4]);
  });
});

describe("consumer options as config writes them", () => {
  const parse = (raw: Record<string, unknown>) => wfsBackend.consumer!.parse(raw, { role: "consumer" }, { baseDir: "/cfg" });
  it("snake_case keys, nested poll options, the checkpoint resolved against the config folder", () => {
    const res = parse({ url: "https://example.org/wfs", type_name: "t", id_field: "uid", filter: { and: [{ property: "a", like: "x*", matchcase: false }] }, poll: { field: "updated", interval_ms: 1000, server_filter: true, checkpoint: "cp.sqlite" } });
    expect(res.ok, JSON.stringify(res)).toBe(true);
    if (res.ok) expect(res.options.poll).toEqual({ field: "updated", intervalMs: 1000, serverFilter: true, checkpoint: "/cfg/cp.sqlite" });
  });
  it("lists every problem with its path", () => {
    const res = parse({ url: "https://example.org/ogc", protocol: "ogcapi", type_name: "t", bbox_crs: "EPSG:3857", filter: { or: [{ property: "k", eq: 1 }] }, poll: { field: "f", by: "id", server_filter: true, checkpoint: "c" } });
    expect(res.ok).toBe(false);
    if (!res.ok) expect(res.problems.map((p) => p.path).sort()).toEqual(["bbox_crs", "filter", "poll.server_filter"]);
    const wfs = parse({ url: "https://example.org/wfs", type_name: "t", datetime: "2026-01-01/..", filter: { property: "a", eq: 1, ne: 2 } });
    expect(wfs.ok).toBe(false);
    if (!wfs.ok) expect(wfs.problems.map((p) => p.path)).toContain("filter");
  });
});

describe("OGC API Features request parameters", () => {
  it("limit, bbox, datetime and eq filters as query parameters; next links resolved against the page", async () => {
    const server = await fakeServer((req, res) => {
      const u = new URL(req.url ?? "", "http://x");
      const page = u.searchParams.get("page") ?? "1";
      const next = page === "1" ? [{ rel: "next", type: "application/geo+json", href: `items?page=2&${u.searchParams.toString().replace(/page=\d&?/, "")}` }] : [];
      res.setHeader("content-type", "application/geo+json");
      res.end(JSON.stringify({ type: "FeatureCollection", numberMatched: 2, features: [{ type: "Feature", id: page, geometry: null, properties: { kind: "tree" } }], links: next }));
    });
    try {
      const fs = await readAll(
        layerReader({ url: `${server.url}?key=k`, protocol: "ogcapi", allowPrivate: true, typeName: "trees", pageSize: 1, bbox: [1, 2, 3, 4], datetime: "2026-01-01T00:00:00Z/..", filter: { property: "kind", eq: "tree" } }),
      );
      expect(fs.map((f) => f.id)).toEqual(["1", "2"]);
      const first = new URL(server.requests[0]!, "http://x");
      expect(first.pathname).toBe("/wfs/collections/trees/items");
      expect(Object.fromEntries(first.searchParams)).toEqual({ key: "k", f: "json", limit: "1", bbox: "1,2,3,4", datetime: "2026-01-01T00:00:00Z/..", kind: "tree" });
      expect(new URL(server.requests[1]!, "http://x").pathname).toBe("/wfs/collections/trees/items");
    } finally {
      await server.close();
    }
  });
});

describe("bad server answers become clear errors naming the URL", () => {
  let server: FakeServer | undefined;
  afterEach(async () => {
    await server?.close();
    server = undefined;
  });
  const caps = `<?xml version="1.0"?><wfs:WFS_Capabilities version="2.0.0" xmlns:wfs="http://www.opengis.net/wfs/2.0" xmlns:ows="http://www.opengis.net/ows/1.1"><ows:OperationsMetadata><ows:Operation name="GetFeature"><ows:Parameter name="outputFormat"><ows:AllowedValues><ows:Value>application/gml+xml; version=3.2</ows:Value></ows:AllowedValues></ows:Parameter></ows:Operation></ows:OperationsMetadata><wfs:FeatureTypeList><wfs:FeatureType><wfs:Name>t</wfs:Name></wfs:FeatureType></wfs:FeatureTypeList></wfs:WFS_Capabilities>`;
  const hits = `<wfs:FeatureCollection xmlns:wfs="http://www.opengis.net/wfs/2.0" numberMatched="2" numberReturned="0"/>`;

  async function readWith(getFeature: (res: import("node:http").ServerResponse) => void): Promise<unknown> {
    server = await fakeServer((req, res) => {
      const q = new URL(req.url ?? "", "http://x").searchParams;
      if (q.get("REQUEST") === "GetCapabilities") return void res.end(caps);
      if (q.get("RESULTTYPE") === "hits") return void res.end(hits);
      getFeature(res);
    });
    return readAll(layerReader({ url: server.url, allowPrivate: true, version: "2.0.0", typeName: "t" })).catch((e: unknown) => e);
  }

  it("an ExceptionReport: the server's code and text", async () => {
    const err = await readWith((res) =>
      res.end(`<ows:ExceptionReport xmlns:ows="http://www.opengis.net/ows/1.1"><ows:Exception exceptionCode="InvalidParameterValue" locator="typeName"><ows:ExceptionText>no such type</ows:ExceptionText></ows:Exception></ows:ExceptionReport>`),
    );
    expect(String(err)).toMatch(/GetFeature from http:\/\/127\.0\.0\.1:\d+\/wfs.*InvalidParameterValue at typeName.*no such type/);
  });

  it("an HTTP 500: the status and an excerpt, retryable", async () => {
    const err = await readWith((res) => {
      res.statusCode = 500;
      res.end("database is down");
    });
    expect(isGeoWatchError(err, "FETCH")).toBe(true);
    expect(String(err)).toMatch(/answered HTTP 500: database is down/);
    expect((err as { retryable: boolean }).retryable).toBe(true);
  });

  it("truncated XML: not well-formed, naming the URL", async () => {
    const err = await readWith((res) => res.end(`<wfs:FeatureCollection xmlns:wfs="http://www.opengis.net/wfs/2.0" xmlns:gml="http://www.opengis.net/gml/3.2"><wfs:member><t gml:id="t.1"><name>a</na`));
    expect(isGeoWatchError(err, "XML"), String(err)).toBe(true);
    expect(String(err)).toMatch(/GetFeature from http:\/\/127\.0\.0\.1:\d+\/wfs.*not well-formed/);
  });

  it("an XML bomb (entity declarations) is refused before parsing", async () => {
    const bomb = `<?xml version="1.0"?><!DOCTYPE lolz [<!ENTITY lol "lol"><!ENTITY lol2 "&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;">]><wfs:FeatureCollection xmlns:wfs="http://www.opengis.net/wfs/2.0"><x>&lol2;</x></wfs:FeatureCollection>`;
    const err = await readWith((res) => res.end(bomb));
    expect(isGeoWatchError(err, "XML"), String(err)).toBe(true);
    expect(String(err)).toMatch(/DOCTYPE\/entity declarations are not accepted/);
  });

  it("OGC API: broken JSON and next links that loop", async () => {
    server = await fakeServer((req, res) => {
      if ((req.url ?? "").includes("broken")) return void res.end('{"type":"FeatureCollection","features":[{"type":"Fea');
      res.end(JSON.stringify({ type: "FeatureCollection", features: [{ type: "Feature", id: 1, geometry: null, properties: {} }], links: [{ rel: "next", href: req.url }] }));
    });
    const broken = await readAll(layerReader({ url: server.url, protocol: "ogcapi", allowPrivate: true, typeName: "broken" })).catch((e: unknown) => e);
    expect(String(broken)).toMatch(/items from http:\/\/127\.0\.0\.1:\d+\/wfs\/collections\/broken\/items.* is not JSON \(truncated\?\)/);
    const loop = await readAll(layerReader({ url: server.url, protocol: "ogcapi", allowPrivate: true, typeName: "loop" })).catch((e: unknown) => e);
    expect(String(loop)).toMatch(/next links .* loop or do not end/);
  });
});
