// The geofence benchmarks' data, shared by geofence.bench.mjs (the stage alone) and geofence-e2e.bench.mjs (through
// the broker): 10,000 fences cut from real country outlines and tracks on a random walk, both from one seeded PRNG.
//
// Fences: the country outlines of @geo-maps/countries-land-10km (holes included) clipped to a grid of cells
// (Sutherland-Hodgman per ring), one fence per (country, cell). Points: tracks doing a random walk (heading drifts,
// 2-10 km per step), 70% starting on a fence vertex so most points fall on land; the stream is step-major (every
// track's step 1, then step 2, ...).
import { readFileSync } from "node:fs";
import { createRequire } from "node:module";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";

export const root = join(dirname(fileURLToPath(import.meta.url)), "..");
/** Resolves from packages/spatial, which has the data and turf as devDependencies. */
export const spatialRequire = createRequire(join(root, "packages/spatial/package.json"));

export function rng(seed) {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

export const arg = (name, dflt) => {
  const i = process.argv.indexOf(`--${name}`);
  return i >= 0 ? Number(process.argv[i + 1]) : dflt;
};

function clipRing(ring, x0, y0, x1, y1) {
  let pts = ring.slice(0, -1);
  const edges = [
    (p) => p[0] >= x0, (p) => p[0] <= x1, (p) => p[1] >= y0, (p) => p[1] <= y1,
  ];
  const cut = [
    (a, b) => [x0, a[1] + ((x0 - a[0]) * (b[1] - a[1])) / (b[0] - a[0])],
    (a, b) => [x1, a[1] + ((x1 - a[0]) * (b[1] - a[1])) / (b[0] - a[0])],
    (a, b) => [a[0] + ((y0 - a[1]) * (b[0] - a[0])) / (b[1] - a[1]), y0],
    (a, b) => [a[0] + ((y1 - a[1]) * (b[0] - a[0])) / (b[1] - a[1]), y1],
  ];
  for (let e = 0; e < 4 && pts.length > 0; e++) {
    const inside = edges[e];
    const out = [];
    for (let k = 0; k < pts.length; k++) {
      const a = pts[(k + pts.length - 1) % pts.length], b = pts[k];
      if (inside(b)) {
        if (!inside(a)) out.push(cut[e](a, b));
        out.push(b);
      } else if (inside(a)) out.push(cut[e](a, b));
    }
    pts = out;
  }
  if (pts.length < 3) return null;
  let area = 0;
  for (let k = 0; k < pts.length; k++) {
    const a = pts[k], b = pts[(k + 1) % pts.length];
    area += a[0] * b[1] - b[0] * a[1];
  }
  if (Math.abs(area) < 1e-9) return null;
  return [...pts, pts[0]];
}

function gridFences(countries, cell) {
  const features = [];
  for (const c of countries.features) {
    const polys = c.geometry.type === "Polygon" ? [c.geometry.coordinates] : c.geometry.coordinates;
    const byCell = new Map();
    for (const poly of polys) {
      let minX = Infinity, minY = Infinity, maxX = -Infinity, maxY = -Infinity;
      for (const [x, y] of poly[0]) {
        minX = Math.min(minX, x); minY = Math.min(minY, y); maxX = Math.max(maxX, x); maxY = Math.max(maxY, y);
      }
      for (let i = Math.floor(minX / cell); i * cell <= maxX; i++) {
        for (let j = Math.floor(minY / cell); j * cell <= maxY; j++) {
          const x0 = i * cell, y0 = j * cell, x1 = x0 + cell, y1 = y0 + cell;
          const outer = clipRing(poly[0], x0, y0, x1, y1);
          if (!outer) continue;
          const rings = [outer];
          for (const h of poly.slice(1)) {
            const ch = clipRing(h, x0, y0, x1, y1);
            if (ch) rings.push(ch);
          }
          const key = `${i}:${j}`;
          if (!byCell.has(key)) byCell.set(key, []);
          byCell.get(key).push(rings);
        }
      }
    }
    for (const [key, parts] of byCell) {
      features.push({
        type: "Feature",
        id: `${c.properties.A3}:${key}`,
        properties: {},
        geometry: parts.length === 1 ? { type: "Polygon", coordinates: parts[0] } : { type: "MultiPolygon", coordinates: parts },
      });
    }
  }
  return features;
}

/** `nFences` fences (a FeatureCollection), the cell size used and the vertex count; draws from `rand`. */
export function makeFences(nFences, rand, cell0 = 1.62) {
  const countries = JSON.parse(readFileSync(spatialRequire.resolve("@geo-maps/countries-land-10km/map.geo.json"), "utf8"));
  let cell = cell0;
  let features = gridFences(countries, cell);
  while (features.length < nFences) {
    cell *= 0.9;
    features = gridFences(countries, cell);
  }
  // Keep exactly nFences, dropping a random few so the cover stays even.
  for (let k = features.length - 1; k > 0; k--) {
    const j = Math.floor(rand() * (k + 1));
    [features[k], features[j]] = [features[j], features[k]];
  }
  features.length = nFences;
  let vertices = 0;
  for (const f of features) {
    const polys = f.geometry.type === "Polygon" ? [f.geometry.coordinates] : f.geometry.coordinates;
    for (const p of polys) for (const r of p) vertices += r.length;
  }
  return { fc: { type: "FeatureCollection", features }, cell, vertices };
}

/** Positions of `nTracks` tracks over `steps` steps, step-major: px[s * nTracks + t]; draws from `rand`. */
export function makeTracks(features, nTracks, steps, rand) {
  const xs = new Float64Array(nTracks), ys = new Float64Array(nTracks), heading = new Float64Array(nTracks), speed = new Float64Array(nTracks);
  const allVerts = features.map((f) => (f.geometry.type === "Polygon" ? f.geometry.coordinates[0][0] : f.geometry.coordinates[0][0][0]));
  for (let t = 0; t < nTracks; t++) {
    if (rand() < 0.7) {
      const v = allVerts[Math.floor(rand() * allVerts.length)];
      xs[t] = v[0] + (rand() - 0.5) * 0.2;
      ys[t] = v[1] + (rand() - 0.5) * 0.2;
    } else {
      xs[t] = -180 + 360 * rand();
      ys[t] = -60 + 140 * rand();
    }
    heading[t] = 2 * Math.PI * rand();
    speed[t] = 0.02 + 0.08 * rand(); // degrees per step, about 2-10 km
  }
  const total = steps * nTracks;
  const px = new Float64Array(total), py = new Float64Array(total);
  for (let s = 0; s < steps; s++) {
    for (let t = 0; t < nTracks; t++) {
      heading[t] += (rand() - 0.5) * 0.6;
      xs[t] += speed[t] * Math.cos(heading[t]);
      ys[t] += speed[t] * Math.sin(heading[t]);
      if (xs[t] > 180) xs[t] -= 360;
      if (xs[t] < -180) xs[t] += 360;
      if (ys[t] > 85 || ys[t] < -85) heading[t] = -heading[t];
      ys[t] = Math.max(-85, Math.min(85, ys[t]));
      px[s * nTracks + t] = xs[t];
      py[s * nTracks + t] = ys[t];
    }
  }
  return { px, py };
}
