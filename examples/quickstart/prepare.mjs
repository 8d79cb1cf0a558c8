// Makes the quickstart's input in ./out: country fences from @geo-maps/countries-land-10km (Natural Earth
// derived, 10 km resolution) and a stream of moving vessel/aircraft positions crossing them, plus a few
// malformed records that must end up in the dead-letter file. Deterministic (seeded), so runs compare.
import { mkdirSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { createRequire } from "node:module";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";

const here = dirname(fileURLToPath(import.meta.url));
const out = join(here, "out");
rmSync(out, { recursive: true, force: true });
mkdirSync(out, { recursive: true });

const require = createRequire(import.meta.url);
const world = JSON.parse(readFileSync(require.resolve("@geo-maps/countries-land-10km/map.geo.json"), "utf8"));
const fences = { type: "FeatureCollection", features: world.features.map((f) => ({ ...f, id: f.properties.A3 })) };
writeFileSync(join(out, "fences.geojson"), JSON.stringify(fences));

let seed = 42;
const rand = () => ((seed = (seed * 1103515245 + 12345) % 2 ** 31) / 2 ** 31);
const TRACKS = 40, STEPS = 150;
const start = Date.parse("2026-11-23T08:00:00Z");
const tracks = Array.from({ length: TRACKS }, (_, i) => ({
  id: `T${String(i + 1).padStart(2, "0")}`,
  lon: -15 + rand() * 55,
  lat: 5 + rand() * 55,
  dlon: (rand() - 0.5) * 0.6,
  dlat: (rand() - 0.5) * 0.4,
}));
const lines = [];
for (let s = 0; s < STEPS; s++) {
  for (const t of tracks) {
    t.lon = Math.max(-179, Math.min(179, t.lon + t.dlon + (rand() - 0.5) * 0.05));
    t.lat = Math.max(-85, Math.min(85, t.lat + t.dlat + (rand() - 0.5) * 0.05));
    const date = new Date(start + s * 60_000).toISOString();
    lines.push(JSON.stringify({
      metadata: { actiontype: "position", targettype: "track", date },
      data: { type: "Feature", geometry: { type: "Point", coordinates: [+t.lon.toFixed(5), +t.lat.toFixed(5)] }, properties: { track: t.id, step: s } },
    }));
  }
  if (s === 50) lines.push('{"metadata":{"actiontype":"position"},"data":{"type":"Feature","geometry":{"type":"Point","coordinates":[12.5]},"properties":{"track":"BAD1"}}}');
  if (s === 90) lines.push('{"metadata":{"actiontype":"position"},"data":{"type":"Feature","geometry":{"type":"Point","coordinates":[12.5');
  if (s === 120) lines.push('{"metadata":{"actiontype":"position"},"data":{"type":"Feature","geometry":{"type":"Polygon","coordinates":[[[0,0],[1,0],[1,1]]]},"properties":{"track":"BAD3"}}}');
}
writeFileSync(join(out, "positions.ndjson"), lines.join("\n") + "\n");
console.error(`[quickstart] ${fences.features.length} country fences, ${lines.length} positions (${TRACKS} tracks, 3 malformed) in ${out}`);
