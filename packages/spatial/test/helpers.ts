import { readFileSync } from "node:fs";
import { createRequire } from "node:module";
import type { Fence, FeatureCollection } from "../src/index.js";

/** Deterministic PRNG (mulberry32) so failures reproduce. */
export { seededRandom as rng } from "@geowatch/testkit";

/** A star-shaped ring around (cx, cy), closed. */
export function starRing(rand: () => number, cx: number, cy: number, r: number, n: number, clockwise = false): number[][] {
  const ring: number[][] = [];
  for (let k = 0; k < n; k++) {
    const a = ((clockwise ? -1 : 1) * 2 * Math.PI * k) / n;
    const rr = r * (0.4 + 0.6 * rand());
    ring.push([cx + rr * Math.cos(a), cy + rr * Math.sin(a)]);
  }
  ring.push([...ring[0]!]);
  return ring;
}

/** The countries of @geo-maps/countries-land-10km (real outlines with holes), ids = ISO A3. */
export function countries(): FeatureCollection {
  const require = createRequire(import.meta.url);
  const file = require.resolve("@geo-maps/countries-land-10km/map.geo.json");
  const fc = JSON.parse(readFileSync(file, "utf8")) as FeatureCollection;
  for (const f of fc.features) f.id = String(f.properties!.A3);
  return fc;
}

export function fenceFeature(id: string, coordinates: number[][][]): FeatureCollection["features"][number] {
  return { type: "Feature", id, properties: {}, geometry: { type: "Polygon", coordinates } };
}

export type { Fence };
