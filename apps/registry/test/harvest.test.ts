import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { createFetcher, harvest, parseWmsCapabilities } from "../src/index.js";
import type { LayerInput, Registry } from "../src/index.js";
import { esriExtent } from "../src/harvest/esri.js";
import { env, esriRoute, fixtureServer, tmpRegistry } from "./helpers.js";

const fetcher = createFetcher({ allowPrivate: true });
const ctx = { fetcher };

describe("harvesters against real servers", () => {
  it("WMS 1.3.0 from QGIS Server: named layers, bbox in EPSG:4326, keywords, GetMap URL", async () => {
    const h = await harvest(env.qgis(), "OGC:WMS", ctx);
    expect(h.version).toBe("1.3.0");
    expect(h.title).toBe("GeoWatch registry QGIS");
    const cells = h.layers.find((l) => l.name === "cells")!;
    expect(cells.bbox).toEqual([-175, -85, 175, 85]);
    expect(cells.keywords).toEqual(expect.arrayContaining(["cells", "grid"]));
    expect(cells.crs).toEqual(expect.arrayContaining(["EPSG:4326"]));
    expect(cells.extra).toMatchObject({ version: "1.3.0", format: "image/png" });
  });

  it("WMS 1.1.1 capabilities (QGIS answering VERSION=1.1.1) parse the same", async () => {
    const xml = await (await fetch(`${env.qgis()}?SERVICE=WMS&REQUEST=GetCapabilities&VERSION=1.1.1`)).text();
    expect(xml).toContain("WMT_MS_Capabilities");
    const h = parseWmsCapabilities(xml, env.qgis());
    expect(h.version).toBe("1.1.1");
    expect(h.layers.find((l) => l.name === "cells")!.bbox).toEqual([-175, -85, 175, 85]);
  });

  it("WMS with a time dimension (MapServer): the layer's time extent", async () => {
    const h = await harvest(env.mapserver(), "OGC:WMS", ctx);
    const cells = h.layers.find((l) => l.name === "cells")!;
    expect(cells.title).toBe("Cells over time");
    expect(cells.timeStart).toBe(Date.parse("2013-01-01T00:00:00Z"));
    expect(cells.timeEnd).toBe(Date.parse("2013-12-31T00:00:00Z"));
  });

  it("WFS 2.0.0 (MapServer) and 1.1.0 (QGIS Server, which answers 1.1.0 to 2.0.0)", async () => {
    const ms = await harvest(env.mapserver(), "OGC:WFS", ctx);
    expect(ms.version).toBe("2.0.0");
    expect(ms.layers.map((l) => l.name)).toEqual(["ms:cells"]);
    expect(ms.layers[0]!.bbox).toEqual([-175, -85, 175, 85]);
    const q = await harvest(env.qgis(), "OGC:WFS", ctx);
    expect(q.version).toBe("1.1.0");
    expect(q.layers.map((l) => l.name)).toEqual(["cells"]);
  });

  it("WMTS from QGIS Server (KVP) and MapProxy (RESTful template)", async () => {
    const q = await harvest(env.qgis(), "OGC:WMTS", ctx);
    expect(q.layers[0]).toMatchObject({ name: "cells", extra: { matrixSet: "EPSG:3857", format: "image/png" } });
    const mp = await harvest(`${env.mapproxy()}/wmts/1.0.0/WMTSCapabilities.xml`, "OGC:WMTS", ctx);
    expect(mp.layers[0]!.name).toBe("debug");
    expect(String(mp.layers[0]!.extra!.template)).toContain("{TileMatrix}");
  });

  it("TMS from MapProxy: the TileMapService root and its TileMap", async () => {
    const h = await harvest(`${env.mapproxy()}/tms/1.0.0/`, "OSGeo:TMS", ctx);
    expect(h.layers).toHaveLength(1);
    const [l] = h.layers;
    expect(l!.title).toBe("Debug grid tiles");
    expect(l!.bbox![0]).toBeCloseTo(-180, 3);
    expect(l!.bbox![3]).toBeGreaterThan(80);
  });

  it("CSW 2.0.2 records from pycsw, bbox axis order handled", async () => {
    const progress: number[] = [];
    const h = await harvest(env.pycsw(), "OGC:CSW", { fetcher, progress: (d) => progress.push(d) });
    expect(h.layers.map((l) => l.identifier).sort()).toEqual(["urn:geowatch:test:quakes", "urn:geowatch:test:rivers", "urn:geowatch:test:roads"]);
    const roads = h.layers.find((l) => l.identifier.endsWith("roads"))!;
    expect(roads.bbox).toEqual([-71.2, 42.2, -70.9, 42.5]);
    expect(roads.keywords).toEqual(["transport", "roads"]);
    expect(progress.at(-1)).toBe(3);
  });

  it("OGC API Features from QGIS Server and MapServer: collections with extents", async () => {
    const q = await harvest(`${env.qgis()}/wfs3`, "OGC:API-Features", ctx);
    expect(q.layers[0]).toMatchObject({ name: "cells", bbox: [-175, -85, 175, 85] });
    expect(q.layers[0]!.timeStart).toBe(Date.parse("2013-01-15T00:00:00Z"));
    const m = await harvest(`${env.mapserver()}/registry/ogcapi`, "OGC:API-Features", ctx);
    expect(m.layers[0]).toMatchObject({ name: "cells", title: "Cells over time", keywords: ["cells", "time"] });
  });

  it("OGC API Records from pygeoapi (TinyDB catalogue): five records, two a page, followed by next links", async () => {
    const progress: number[] = [];
    const h = await harvest(`${env.records()}/collections`, "OGC:API-Records", { fetcher, progress: (d) => progress.push(d) });
    expect(h.title).toBe("GeoWatch registry records");
    expect(h.url).toBe(env.records());
    expect(progress).toEqual([2, 4, 5]);
    const by = Object.fromEntries(h.layers.map((l) => [l.identifier.replace("urn:geowatch:records:", ""), l]));
    expect(Object.keys(by).sort()).toEqual(["coral", "glaciers", "lakes", "soils", "stations"]);
    expect(by.lakes).toMatchObject({
      title: "Great Lakes water levels",
      abstract: "Monthly mean water levels of the Great Lakes, 2010-2019",
      keywords: ["lakes", "water level", "inlandWaters"],
      bbox: [-93.5, 41, -75, 49.5],
      timeStart: Date.parse("2010-01-01T00:00:00Z"),
      timeEnd: Date.parse("2019-12-31T00:00:00Z"),
      type: "dataset",
      url: `${env.records()}/collections/catalog/items/urn%3Ageowatch%3Arecords%3Alakes`,
    });
    expect(by.lakes!.extra!.links).toEqual([
      { href: "https://data.example.org/lakes/wms?SERVICE=WMS&REQUEST=GetCapabilities", rel: "service", type: "application/xml", title: "WMS of the water levels" },
      { href: "https://data.example.org/lakes/levels.csv", rel: "enclosure", type: "text/csv", title: "Monthly levels (CSV)" },
    ]);
    // The GeoJSON bbox member when there is no geometry; a date is a one-day extent.
    expect(by.glaciers).toMatchObject({ bbox: [5.9, 45.8, 10.5, 47.8], timeStart: Date.parse("2015-08-31T00:00:00Z"), timeEnd: Date.parse("2015-08-31T00:00:00Z") });
    // An open interval end stays open; a point is a zero-size bbox.
    expect(by.stations).toMatchObject({ type: "service", bbox: [-0.1276, 51.5072, -0.1276, 51.5072], timeStart: Date.parse("2001-01-01T00:00:00Z"), timeEnd: null });
    // Every polygon of a MultiPolygon counts; no time member: no time extent.
    expect(by.coral).toMatchObject({ bbox: [113, -24.5, 153, -10.5], timeStart: null, timeEnd: null, keywords: ["coral", "reefs"] });
    expect(by.soils).toMatchObject({ timeStart: Date.parse("1990-01-01T00:00:00Z"), timeEnd: Date.parse("2000-01-01T00:00:00Z") });
  });

  it("OGC API Records: max_records stops the paging", async () => {
    const h = await harvest(env.records(), "OGC:API-Records", { fetcher, maxRecords: 3 });
    expect(h.layers).toHaveLength(3);
  });

  it("Esri FeatureServer from Koop", async () => {
    const h = await harvest(env.koop(), "ESRI:ArcGIS:FeatureServer", ctx);
    expect(h.abstract).toBe("Grid cells with a kind and a date");
    expect(h.layers).toHaveLength(1);
    expect(h.layers[0]!.bbox![0]).toBeCloseTo(-175, 3);
    expect(h.layers[0]!.bbox![3]).toBeCloseTo(85, 3);
  });
});

describe("Esri MapServer, ImageServer and services root (documents in the shape of Esri's REST API reference)", () => {
  let srv: Awaited<ReturnType<typeof fixtureServer>>;
  let reg: Registry;
  beforeAll(async () => {
    srv = await fixtureServer(esriRoute());
    reg = await tmpRegistry();
  });
  afterAll(async () => {
    await reg.close();
    await srv.close();
  });

  it("a services root adds every MapServer, ImageServer and FeatureServer it lists, folders included, and nothing else", async () => {
    const services = await reg.add(`${srv.url}/arcgis/rest/services`, { enqueue: false });
    expect(services.map((s) => s.url.replace(srv.url, "")).sort()).toEqual([
      "/arcgis/rest/services/Census/MapServer",
      "/arcgis/rest/services/Imagery/Toronto/ImageServer",
      "/arcgis/rest/services/SampleWorldCities/FeatureServer",
      "/arcgis/rest/services/SampleWorldCities/MapServer",
    ]);
    // Both folders were listed; GeocodeServer, VectorTileServer, SceneServer, GeometryServer and GPServer were not added.
    expect(srv.requests.filter((r) => /\/services\/(Imagery|Utilities)\?/.test(r))).toHaveLength(2);
  });

  it("MapServer in WGS84: per-layer extents from /layers, keywords from documentInfo; export checked as a 256x256 PNG", async () => {
    const [svc] = await reg.add(`${srv.url}/arcgis/rest/services/SampleWorldCities/MapServer`, { enqueue: false });
    await reg.apply(await reg.harvestUpdate(svc!.id));
    const layers = await reg.storage.listLayers(svc!.id);
    expect(layers.map((l) => l.title)).toEqual(["Cities", "Continent", "World"]);
    expect(layers[0]!.bbox).toEqual([-176.1516, -54.7919, 179.2219, 78.2]);
    expect(layers[0]!.abstract).toBe("Cities of the world with their population");
    expect(layers[1]!.bbox).toEqual([-180, -90, 180, 83.6236]);
    expect(layers[0]!.keywords).toEqual(["cities", "population", "world"]);
    expect(layers[0]!.crs).toEqual(["EPSG:4326"]);
    expect(layers[0]!.owner).toBe("Esri");
    const u = await reg.checkUpdate(svc!.id);
    expect(u.kind === "checks" && u.checks.map((c) => [c.ok, c.message])).toEqual([[true, expect.stringContaining("JSON")], ...layers.map(() => [true, "png 256x256"])]);
    expect(srv.requests.some((r) => r.includes("/MapServer/export?") && r.includes("size=256%2C256") && r.includes("layers=show%3A0"))).toBe(true);
  });

  it("MapServer in Web Mercator (wkid 102100, latestWkid 3857): group layers, time, NaN and Albers extents, tables", async () => {
    const h = await harvest(`${srv.url}/arcgis/rest/services/Census/MapServer`, "ESRI:ArcGIS:MapServer", ctx);
    expect(h.title).toBe("Census 2010-2020");
    expect(h.version).toBe("10.91");
    // The group layer (subLayerIds [1, 2]) and the table are not layers; the leaves keep their group.
    expect(h.layers.map((l) => [l.name, l.title, l.extra!.groups])).toEqual([
      ["1", "Counties", ["Census boundaries"]],
      ["2", "Tracts", ["Census boundaries"]],
      ["3", "States", undefined],
    ]);
    const [counties, tracts, states] = h.layers as [LayerInput, LayerInput, LayerInput];
    // -13885038.8908, 2870337.1304, -7455049.4887, 6338174.0552 in Web Mercator metres; the expected degrees are
    // GDAL's (gdaltransform -s_srs EPSG:3857 -t_srs EPSG:4326).
    const want = [-124.731426561996, 24.9559669967937, -66.9698489956663, 49.3717349967383];
    counties.bbox!.forEach((v, i) => expect(v).toBeCloseTo(want[i]!, 7));
    expect(counties.crs).toEqual(["EPSG:3857"]);
    expect(counties.keywords).toEqual(["census", "population", "counties", "tracts"]);
    expect(counties.abstract).toBe("County boundaries with 2010 and 2020 population");
    // The layer's own timeInfo; Tracts has none and takes the service's.
    expect([counties.timeStart, counties.timeEnd]).toEqual([Date.parse("2010-01-01T00:00:00Z"), Date.parse("2020-01-01T00:00:00Z")]);
    expect([tracts.timeStart, tracts.timeEnd]).toEqual([Date.parse("2010-01-01T00:00:00Z"), Date.parse("2020-12-31T00:00:00Z")]);
    // Tracts' extent is "NaN"s and States' is in Albers (ESRI:102003, not reprojected): both get the map's extent.
    expect(tracts.bbox).toEqual(counties.bbox);
    expect(states.bbox).toEqual(counties.bbox);
    expect(states.crs).toEqual(["ESRI:102003"]);
  });

  it("ImageServer: one layer, Web Mercator extent converted to lon/lat, time extent, bands", async () => {
    const h = await harvest(`${srv.url}/arcgis/rest/services/Imagery/Toronto/ImageServer`, "ESRI:ArcGIS:ImageServer", ctx);
    expect(h.layers).toHaveLength(1);
    const [l] = h.layers;
    expect(l!.title).toBe("Toronto");
    expect(l!.abstract).toBe("Toronto orthophotos");
    expect(h.abstract).toBe("Ortho imagery of Toronto, Canada, 2017.");
    const want = [-79.5351751692974, 43.6443469098092, -79.1165979761396, 43.9002869273875]; // gdaltransform's
    l!.bbox!.forEach((v, i) => expect(v).toBeCloseTo(want[i]!, 7));
    expect(l!.crs).toEqual(["EPSG:3857"]);
    expect([l!.timeStart, l!.timeEnd]).toEqual([1483228800000, 1514678400000]);
    expect(l!.extra).toMatchObject({ bands: 3, pixelType: "U8" });
  });
});

describe("Esri extents", () => {
  it("converts WGS84 and Web Mercator, clamps out-of-range values, refuses NaN, wkt-only and projected systems", () => {
    expect(esriExtent({ xmin: -207.47, ymin: -103.12, xmax: 207.47, ymax: 103.12, spatialReference: { wkid: 4326, latestWkid: 4326 } })).toEqual([-180, -90, 180, 90]);
    expect(esriExtent({ xmin: 1, ymin: 2, xmax: 3, ymax: 4 })).toEqual([1, 2, 3, 4]);
    const world = esriExtent({ xmin: -2.5e7, ymin: -3e7, xmax: 2.5e7, ymax: 3e7, spatialReference: { wkid: 102100 } })!;
    expect(world[0]).toBeCloseTo(-180, 6);
    expect(world[3]).toBeCloseTo(85.0511, 3);
    expect(esriExtent({ xmin: "NaN", ymin: "NaN", xmax: "NaN", ymax: "NaN", spatialReference: { wkid: 4326 } })).toBeNull();
    expect(esriExtent({ xmin: 0, ymin: 0, xmax: 1, ymax: 1, spatialReference: { wkt: 'PROJCS["x"]' } })).toBeNull();
    expect(esriExtent({ xmin: 1440000, ymin: 535000, xmax: 1455000, ymax: 550000, spatialReference: { wkid: 102719, latestWkid: 2264 } })).toBeNull();
    expect(esriExtent({ xmin: 5, ymin: 45, xmax: 6, ymax: 46, spatialReference: { wkid: 4258 } })).toEqual([5, 45, 6, 46]);
  });
});
