// System test: `geowatch run` polls MapServer's 3000 points (max_features per poll, so the stream runs for a
// while) into an NDJSON file, is SIGKILLed twice mid-flow, and a last run with --until-idle finishes. Every
// feature arrives at least once; the duplicates are only what was in flight at a kill.
import { spawn } from "node:child_process";
import type { ChildProcess } from "node:child_process";
import { existsSync, mkdtempSync, readFileSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";
import { expect, it } from "vitest";
import { mapserverUrl } from "./reader-helpers.js";

const BIN = join(dirname(fileURLToPath(import.meta.url)), "../../../apps/broker/bin/geowatch.js");
const MAX_PER_POLL = 150;
const COUNT = 50;

const lines = (file: string): string[] => (existsSync(file) ? readFileSync(file, "utf8").split("\n").filter((l) => l !== "") : []);

async function until(cond: () => boolean, ms: number, what: string): Promise<void> {
  const end = Date.now() + ms;
  while (!cond()) {
    if (Date.now() > end) throw new Error(`timed out after ${ms} ms waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 50));
  }
}

function run(config: string, args: string[] = []): { child: ChildProcess; exited: Promise<number | null>; log: () => string } {
  let log = "";
  const child = spawn(process.execPath, [BIN, "run", config, ...args], { stdio: ["ignore", "pipe", "pipe"] });
  child.stdout!.on("data", (d: Buffer) => (log += d.toString()));
  child.stderr!.on("data", (d: Buffer) => (log += d.toString()));
  const exited = new Promise<number | null>((done) => child.on("exit", (code) => done(code)));
  return { child, exited, log: () => log };
}

it("SIGKILLed twice mid-flow, the polling reader loses nothing", async () => {
  const dir = mkdtempSync(join(tmpdir(), "wfs-kill-"));
  const out = join(dir, "out.ndjson");
  const config = join(dir, "geowatch.yaml");
  writeFileSync(
    config,
    [
      "brokers:",
      "  - name: points",
      `    count: ${COUNT}`,
      "    consumers:",
      "      - backend: wfs",
      "        codec: geojson",
      `        url: ${mapserverUrl()}`,
      "        allow_private: true",
      '        version: "2.0.0"',
      "        type_name: ms:points",
      "        page_size: 5000",
      `        max_features: ${MAX_PER_POLL}`,
      "        id_field: num",
      "        poll: { field: updated, interval_ms: 60000, checkpoint: ./points.sqlite }",
      "    producers:",
      "      - backend: file",
      "        codec: geojson",
      "        path: ./out.ndjson",
      "",
    ].join("\n"),
  );
  const kills: number[] = [];
  for (const at of [500, 1400]) {
    const r = run(config);
    try {
      await until(() => lines(out).length >= at, 60_000, `${at} lines (run log: ${r.log().slice(-500)})`);
    } finally {
      r.child.kill("SIGKILL");
    }
    await r.exited;
    kills.push(lines(out).length);
  }
  const last = run(config, ["--until-idle"]);
  expect(await last.exited, last.log().slice(-800)).toBe(0);
  const nums = lines(out).map((l) => (JSON.parse(l) as { properties: { num: number } }).properties.num);
  expect(kills[0], "the first kill came mid-flow").toBeLessThan(3000);
  expect(kills[1], "the second kill came mid-flow").toBeLessThan(3000);
  expect(new Set(nums).size, "every feature arrived").toBe(3000);
  // Re-sent after a kill: at most what was emitted and not yet committed (one poll plus a batch) per kill.
  expect(nums.length - 3000, "duplicates").toBeLessThanOrEqual(2 * (MAX_PER_POLL + COUNT));
}, 150_000);
