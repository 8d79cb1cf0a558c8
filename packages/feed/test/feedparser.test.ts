// Parses the served feeds with an independent, widely used parser: Python feedparser (PyPI), from the venv
// that .ci/servers/feedparser.sh makes.
import { execFile } from "node:child_process";
import { mkdtemp, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { promisify } from "node:util";
import { afterAll, beforeAll, expect, it } from "vitest";
import { requireEnv } from "@geowatch/testkit";
import { feedProducer, feedServer } from "../src/index.js";
import type { FeedServer } from "../src/index.js";

const run = promisify(execFile);
const python = requireEnv("GEOWATCH_FEEDPARSER_PYTHON", "Run: bash .ci/servers/feedparser.sh start && source .servers/env/feedparser.env");

// Prints what feedparser made of the document: the fields a reader shows, as JSON.
const PARSE = `
import html, json, sys, feedparser
d = feedparser.parse(sys.stdin.buffer.read())
# What a reader displays: HTML content rendered to its text.
def text_of(detail):
    if not detail: return None
    return html.unescape(detail["value"]) if detail.get("type") == "text/html" else detail["value"]
out = {"bozo": bool(d.bozo), "bozo_exception": str(d.get("bozo_exception", "")), "version": d.version,
       "title": d.feed.get("title"), "entries": []}
for e in d.entries:
    out["entries"].append({"id": e.get("id"), "title": e.get("title"), "link": e.get("link"),
        "published": e.get("published_parsed") and list(e.published_parsed)[:6],
        "updated": e.get("updated_parsed") and list(e.updated_parsed)[:6],
        "where": e.get("where"), "tags": [t.term for t in e.get("tags", [])],
        "content": text_of((e.get("content") or [None])[0] or e.get("summary_detail"))})
print(json.dumps(out))
`;

interface Parsed {
  bozo: boolean;
  bozo_exception: string;
  version: string;
  title: string;
  entries: Array<{ id: string; title: string; link: string; published: number[] | null; updated: number[] | null; where: { type: string; coordinates: unknown } | null; tags: string[]; content: string }>;
}

async function parse(xml: string): Promise<Parsed> {
  const child = execFile(python, ["-c", PARSE], { maxBuffer: 16 * 1024 * 1024 });
  const out = new Promise<string>((resolve, reject) => {
    let s = "";
    child.stdout!.on("data", (d: Buffer) => (s += d.toString()));
    child.once("exit", (code) => (code === 0 ? resolve(s) : reject(new Error(`feedparser exited ${code}`))));
    child.once("error", reject);
  });
  child.stdin!.end(xml);
  return JSON.parse(await out) as Parsed;
}

let dir: string;
let server: FeedServer;

beforeAll(async () => {
  await run(python, ["-c", "import feedparser"]);
  dir = await mkdtemp(join(tmpdir(), "gw-feedparser-"));
  const db = join(dir, "feeds.db");
  await writeFile(join(dir, "tokens.json"), JSON.stringify({ "ana lyst": "t0k&n" }));
  server = await feedServer({ db, tokensFile: join(dir, "tokens.json"), title: "GeoNode <events>" });
  const p = feedProducer({ db, linkTemplate: "https://geonode.example/layers/{featuretype}" });
  const rec = (id: string, date: string, extra: Record<string, unknown>, data: unknown) => {
    const metadata = { id, recipient: "ana lyst", channel: "feed", actiontype: "update", targettype: "layer", date, ...extra };
    return { value: JSON.stringify({ metadata, data }), metadata };
  };
  const res = await p.send([
    rec("ev-1", "2026-03-01T10:00:00Z", { featuretype: "topp:states & <more>" }, { type: "Point", coordinates: [-73.98, 40.75] }),
    rec("ev-2", "2026-03-02T11:30:00Z", { featuretype: "topp:roads", bbox: [-124.7, 24.9, -66.9, 49.4] }, null),
    rec("ev-3", "2026-03-03T12:45:00Z", { featuretype: "topp:lakes" }, { type: "Polygon", coordinates: [[[0, 0], [2, 0], [2, 1], [0, 1], [0, 0]]] }),
  ]);
  expect(res.every((r) => r.ok)).toBe(true);
  await p.close?.();
});
afterAll(async () => {
  await server.close();
  await rm(dir, { recursive: true, force: true });
});

const url = (f: string) => `${server.url}/feeds/${encodeURIComponent("ana lyst")}.${f}?token=${encodeURIComponent("t0k&n")}`;

for (const format of ["atom", "rss"] as const) {
  it(`feedparser reads the ${format} feed: titles, links, dates and GeoRSS`, async () => {
    const res = await fetch(url(format));
    expect(res.status).toBe(200);
    const d = await parse(await res.text());
    expect(d.bozo, d.bozo_exception).toBe(false);
    expect(d.version).toBe(format === "atom" ? "atom10" : "rss20");
    expect(d.title).toBe(format === "atom" ? "GeoNode <events>: ana lyst" : "GeoNode <events>: ana lyst");
    expect(d.entries.map((e) => e.title)).toEqual(["update layer topp:lakes", "update layer topp:roads", "update layer topp:states & <more>"]);
    expect(d.entries.map((e) => e.link)).toEqual([
      "https://geonode.example/layers/topp%3Alakes",
      "https://geonode.example/layers/topp%3Aroads",
      "https://geonode.example/layers/topp%3Astates%20%26%20%3Cmore%3E",
    ]);
    expect(d.entries.map((e) => e.published)).toEqual([
      [2026, 3, 3, 12, 45, 0],
      [2026, 3, 2, 11, 30, 0],
      [2026, 3, 1, 10, 0, 0],
    ]);
    expect(d.entries[0]!.tags).toEqual(["update", "layer", "topp:lakes"]);
    // feedparser turns GeoRSS into GeoJSON-like `where` (lon, lat order).
    const where = d.entries.map((e) => e.where);
    expect(where[0]).toMatchObject({ type: "Polygon" });
    expect(JSON.stringify(where[0]!.coordinates)).toBe(JSON.stringify([[[0, 0], [2, 0], [2, 1], [0, 1], [0, 0]]]));
    expect(where[1]).toMatchObject({ type: "Box" });
    expect(JSON.stringify(where[1]!.coordinates)).toBe(JSON.stringify([[-124.7, 24.9], [-66.9, 49.4]]));
    expect(where[2]).toMatchObject({ type: "Point", coordinates: [-73.98, 40.75] });
    expect(d.entries[2]!.content).toContain('"featuretype":"topp:states & <more>"');
  });
}
