// Says where the quickstart's results are and what they hold.
import { existsSync, readdirSync, readFileSync } from "node:fs";
import { dirname, join, relative } from "node:path";
import { fileURLToPath } from "node:url";

const out = join(dirname(fileURLToPath(import.meta.url)), "out");
// Paths relative to the repository root, where the README command runs.
const root = join(dirname(fileURLToPath(import.meta.url)), "..", "..");
const rel = (p) => relative(root, p);
const results = join(out, "results");
console.log("\nGeoWatch quickstart results:");
for (const f of existsSync(results) ? readdirSync(results).sort() : []) {
  const doc = JSON.parse(readFileSync(join(results, f), "utf8"));
  const tracks = new Set(doc.features.map((x) => x.properties?.track));
  console.log(`  ${rel(join(results, f))}: a FeatureCollection of ${doc.features.length} "${f.replace(/\.geojson$/, "")}" events from ${tracks.size} tracks`);
}
const dead = join(out, "dead-letter.ndjson");
if (existsSync(dead)) {
  const lines = readFileSync(dead, "utf8").trim().split("\n").filter(Boolean);
  console.log(`  ${rel(dead)}: ${lines.length} dead letters, each with its reason, e.g.`);
  for (const l of lines.slice(0, 3)) {
    const v = JSON.parse(l);
    const rec = typeof v === "string" ? JSON.parse(v) : v;
    console.log(`    - ${rec.reason}`);
  }
}
console.log(`  ${rel(join(out, "events.ndjson"))}: every event as one NDJSON line`);
