// The quickstart's closing summary: which config ran, what came out (events, files written, dead letters)
// and what to open next. Reads the files the run wrote; with `--log FILE` also the run's closing
// "done:" line, with `--seconds N` how long the run took.
import { existsSync, readdirSync, readFileSync } from "node:fs";
import { dirname, join, relative } from "node:path";
import { parseArgs } from "node:util";
import { fileURLToPath } from "node:url";

const { values: args } = parseArgs({ options: { log: { type: "string" }, seconds: { type: "string" } } });
const here = dirname(fileURLToPath(import.meta.url));
const out = join(here, "out");
// Paths relative to the repository root, where the README command runs.
const root = join(here, "..", "..");
const rel = (p) => relative(root, p);
const lines = (p) => (existsSync(p) ? readFileSync(p, "utf8").split("\n").filter(Boolean) : []);

const positions = lines(join(out, "positions.ndjson"));
const fences = JSON.parse(readFileSync(join(out, "fences.geojson"), "utf8")).features.length;
const events = lines(join(out, "events.ndjson")).map((l) => JSON.parse(l));
const byType = {};
for (const e of events) byType[e.metadata.actiontype] = (byType[e.metadata.actiontype] ?? 0) + 1;
const results = join(out, "results");
const stores = (existsSync(results) ? readdirSync(results).sort() : []).map((f) => {
  const doc = JSON.parse(readFileSync(join(results, f), "utf8"));
  return { path: rel(join(results, f)), features: doc.features.length, tracks: new Set(doc.features.map((x) => x.properties?.track)).size };
});
const dead = lines(join(out, "dead-letter.ndjson")).map((l) => {
  const v = JSON.parse(l);
  return typeof v === "string" ? JSON.parse(v) : v;
});
const done = args.log ? lines(args.log).find((l) => l.includes("done:")) : undefined;

const pad = (s) => s.padEnd(8);
const width = Math.max(0, ...stores.map((s) => s.path.length), rel(join(out, "events.ndjson")).length);
const say = (label, text) => console.log(`  ${pad(label)} ${text}`);
const more = (text) => console.log(`  ${pad("")} ${text}`);

console.log(`\nGeoWatch quickstart${args.seconds ? `: ran in ${args.seconds} s` : ""}`);
say("config", `${rel(join(here, "geowatch.yaml"))} (file -> geojson codec -> geofence stage -> console, event log, GeoJSON store)`);
say("input", `${positions.length} positions, ${fences} country fences (${rel(out)}/)`);
if (done) more(done.replace(/^.*done:\s*/, "run: ").trim());
const kinds = Object.entries(byType).sort().map(([k, n]) => `${n} ${k}`).join(", ");
say("events", `${events.length} geofence events${kinds ? `: ${kinds}` : ""}`);
say("files", `${stores.length + 1} written:`);
for (const s of stores) more(`  ${s.path.padEnd(width)}  ${s.features} features from ${s.tracks} tracks`);
more(`  ${rel(join(out, "events.ndjson")).padEnd(width)}  ${events.length} events, one NDJSON line each`);
say("dead", `${dead.length} dead letters in ${rel(join(out, "dead-letter.ndjson"))}, each with its reason:`);
// The reason without its "[geowatch] [codec]" prefix and "(file at offset)" suffix, cut to one line.
const short = (reason) => {
  const s = String(reason).replace(/^(\[geowatch\] )?(\[[\w-]+\] )?/, "").replace(/\s*\([^()]* at \d+\)$/, "");
  return s.length > 100 ? `${s.slice(0, 99)}…` : s;
};
for (const d of dead.slice(0, 3)) more(`  - ${short(d.reason)}`);
say("next", `open ${stores[0]?.path ?? rel(results)} in any GIS (QGIS reads GeoJSON)`);
more(`edit ${rel(join(here, "geowatch.yaml"))} and run again: bash scripts/quickstart.sh`);
more(`try: node apps/broker/bin/geowatch.js --help (after: source scripts/env.sh)`);
if (args.log) more(`log of this run (tool output, console producer lines): ${rel(args.log)}`);
