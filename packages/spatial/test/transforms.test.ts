import type { Message } from "@geowatch/core";
import { describe, expect, it } from "vitest";
import { buffer, reproject, routeByFence } from "../src/index.js";
import type { FeatureCollection } from "../src/index.js";
import { fenceFeature } from "./helpers.js";

const R = 6378137;
const merc = (lon: number, lat: number) => [(R * lon * Math.PI) / 180, R * Math.log(Math.tan(Math.PI / 4 + (lat * Math.PI) / 360))];
const pointFeature = (x: number, y: number): Message => ({ value: { type: "Feature", properties: { n: 1 }, geometry: { type: "Point", coordinates: [x, y] } } });
const coordsOf = (m: Message) => ((m.value as { geometry: { coordinates: number[] } }).geometry.coordinates);

describe("reproject", () => {
  it("maps EPSG:4326 to EPSG:3857 with known values", async () => {
    const stage = reproject({ from: "EPSG:4326", to: "EPSG:3857" });
    const out = await stage.process([pointFeature(0, 0), pointFeature(180, 0), pointFeature(-71, 41), pointFeature(2.3522, 48.8566)]);
    expect(coordsOf(out.pass[0]!)[0]).toBeCloseTo(0, 6);
    expect(coordsOf(out.pass[1]!)[0]).toBeCloseTo(20037508.342789244, 4);
    const [x, y] = coordsOf(out.pass[2]!);
    expect(x).toBeCloseTo(-7903683.846322424, 3);
    expect(y).toBeCloseTo(merc(-71, 41)[1]!, 3);
    expect(y).toBeCloseTo(5012341.663847514, 3);
    expect(coordsOf(out.pass[3]!)[1]).toBeCloseTo(merc(2.3522, 48.8566)[1]!, 3);
    expect((out.pass[0]!.value as { properties: unknown }).properties).toEqual({ n: 1 });
  });

  it("round-trips 4326 -> 3857 -> 4326 on every position of a polygon inside an envelope, keeping z", async () => {
    const ring = [[10, 50, 7], [11, 50, 7], [11, 51, 7], [10, 51, 7], [10, 50, 7]];
    const msg: Message = { value: { metadata: { actiontype: "update" }, data: { type: "Feature", properties: {}, geometry: { type: "Polygon", coordinates: [ring] } } } };
    const there = (await reproject({ from: "EPSG:4326", to: "EPSG:3857" }).process([msg])).pass[0]!;
    const back = (await reproject({ from: "EPSG:3857", to: "EPSG:4326" }).process([there])).pass[0]!;
    const got = (back.value as { data: { geometry: { coordinates: number[][][] } } }).data.geometry.coordinates[0]!;
    got.forEach((p, k) => {
      expect(p[0]).toBeCloseTo(ring[k]![0]!, 9);
      expect(p[1]).toBeCloseTo(ring[k]![1]!, 9);
      expect(p[2]).toBe(7);
    });
    expect((back.value as { metadata: unknown }).metadata).toEqual({ actiontype: "update" });
    expect(msg.value).toEqual({ metadata: { actiontype: "update" }, data: { type: "Feature", properties: {}, geometry: { type: "Polygon", coordinates: [ring] } } });
  });

  it("takes proj4 definition strings (UTM 33N)", async () => {
    const utm = "+proj=utm +zone=33 +datum=WGS84 +units=m +no_defs";
    const out = await reproject({ from: "EPSG:4326", to: utm }).process([pointFeature(15, 0)]);
    const [x, y] = coordsOf(out.pass[0]!);
    expect(x).toBeCloseTo(500000, 3);
    expect(y).toBeCloseTo(0, 3);
  });

  it("dead-letters a position with no image (the pole in Web Mercator) and rejects unknown CRS", async () => {
    const out = await reproject({ from: "EPSG:4326", to: "EPSG:3857" }).process([pointFeature(0, 90)]);
    expect(out.pass).toEqual([]);
    expect(out.dead?.[0]?.reason).toMatch(/position \[0,90\] at coordinates has no finite image in EPSG:3857/);
    expect(() => reproject({ from: "EPSG:4326", to: "EPSG:99999" })).toThrow(/to: unknown CRS "EPSG:99999"/);
  });
});

describe("buffer", () => {
  it("turns a point into a closed polygon at the given distance", async () => {
    const out = await buffer({ distance: 1, units: "kilometers", steps: 16 }).process([pointFeature(10, 50)]);
    const g = (out.pass[0]!.value as { geometry: { type: string; coordinates: number[][][] } }).geometry;
    expect(g.type).toBe("Polygon");
    const ring = g.coordinates[0]!;
    expect(ring[0]).toEqual(ring[ring.length - 1]);
    expect(ring.length).toBeGreaterThanOrEqual(60);
    for (const [lon, lat] of ring) {
      const dLat = ((lat! - 50) * Math.PI) / 180, dLon = ((lon! - 10) * Math.PI) / 180;
      const a = Math.sin(dLat / 2) ** 2 + Math.cos((50 * Math.PI) / 180) * Math.cos((lat! * Math.PI) / 180) * Math.sin(dLon / 2) ** 2;
      const km = 2 * 6371.0088 * Math.asin(Math.sqrt(a));
      expect(km).toBeGreaterThan(0.98);
      expect(km).toBeLessThan(1.02);
    }
  });

  it("dead-letters a negative buffer that leaves nothing", async () => {
    const poly: Message = { value: { type: "Polygon", coordinates: [[[0, 0], [0.001, 0], [0.001, 0.001], [0, 0.001], [0, 0]]] } };
    const out = await buffer({ distance: -10, units: "kilometers" }).process([poly]);
    expect(out.pass).toEqual([]);
    expect(out.dead?.[0]?.reason).toMatch(/empty geometry/);
  });
});

describe("routeByFence", () => {
  const fences: FeatureCollection = {
    type: "FeatureCollection",
    features: [fenceFeature("port", [[[0, 0], [1, 0], [1, 1], [0, 1], [0, 0]]]), fenceFeature("yard", [[[5, 5], [6, 5], [6, 6], [5, 6], [5, 5]]])],
  };
  const routes = { port: ["slack", "kafka"], "*": ["kafka"], none: ["archive"] };

  it("routes geofence events by metadata.fence", async () => {
    const stage = routeByFence({ routes });
    const ev = (fence: string | null): Message => ({ value: { metadata: { actiontype: "enter", fence }, data: {} } });
    const out = await stage.process([ev("port"), ev("other"), ev(null)]);
    expect(out.pass.map((m) => m.routes)).toEqual([["slack", "kafka"], ["kafka"], ["archive"]]);
  });

  it("tests geometries against fences when there is no metadata.fence", async () => {
    const stage = routeByFence({ routes: { port: ["slack"], yard: ["email"] }, fences });
    const out = await stage.process([pointFeature(0.5, 0.5), pointFeature(5.5, 5.5), pointFeature(3, 3),
      { value: { type: "LineString", coordinates: [[0.5, 0.5], [5.5, 5.5]] } }]);
    expect(out.pass.map((m) => m.routes)).toEqual([["slack"], ["email"], undefined, ["slack", "email"]]);
  });
});
