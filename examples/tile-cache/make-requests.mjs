// Writes out/requests.log: N tile requests (default 2000; `node make-requests.mjs 5000`) over three sources and
// zoom levels 0-6, dated the last few seconds, plus one request older than the codec's ttl (filtered out) and one
// line with an x outside its zoom level (dead-lettered). Starts the file channel over (removes its offset file).
import { mkdirSync, rmSync, writeFileSync } from "node:fs";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";

const here = dirname(fileURLToPath(import.meta.url));
const n = Number(process.argv[2] ?? 2000);
const sources = [
  ["osm", "png"],
  ["terrain", "png"],
  ["satellite", "jpg"],
];
let seed = 49;
const rand = (k) => {
  seed = (seed * 1103515245 + 12345) % 2147483648;
  return Math.floor(seed / 65536) % k; // the high bits: an LCG's low bits repeat quickly
};
const now = Date.now();
const lines = [];
for (let i = 0; i < n; i++) {
  const [source, ext] = sources[rand(3)];
  const z = rand(7);
  // Few tiles per zoom level, so tiles are requested more than once.
  const side = Math.min(2 ** z, 8);
  lines.push(`${new Date(now - (n - i) * 2).toISOString()};${source},${z},${rand(side)},${rand(side)},${ext}`);
}
lines.splice(n >> 1, 0, `${new Date(now - 7200_000).toISOString()};archive,1,0,0,png`);
lines.splice(n >> 2, 0, `${new Date(now).toISOString()};osm,4,16,3,png`);
const out = join(here, "out");
mkdirSync(out, { recursive: true });
rmSync(join(out, "requests.log.offset"), { force: true });
rmSync(join(out, "dead-letter.ndjson"), { force: true });
writeFileSync(join(out, "requests.log"), lines.join("\n") + "\n");
console.log(`wrote ${lines.length} tile requests to out/requests.log (one stale, one bad)`);
