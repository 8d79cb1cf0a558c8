// `geowatch run` against a real S3 API (moto: bash .ci/servers/moto.sh start): a file channel into an S3
// store, and an S3 source into a file, each with a SIGKILL mid-flow and a restart: 0 missing.
import { appendFileSync, readFileSync, writeFileSync } from "node:fs";
import { createServer, connect as tcpConnect, type Server, type Socket } from "node:net";
import { join } from "node:path";
import { afterAll, describe, expect, it } from "vitest";
import { payloadText } from "@geowatch/core";
import { s3Store } from "@geowatch/s3";
import { sleep, startRun, stopRun, tempDir, unique, until, writeConfig, type RunChild } from "./helpers.js";

const children: RunChild[] = [];
afterAll(() => {
  for (const c of children) if (c.proc.exitCode === null && c.proc.signalCode === null) c.proc.kill("SIGKILL");
});

function motoEndpoint(): string {
  const v = process.env.GEOWATCH_MOTO_ENDPOINT;
  if (!v) throw new Error("GEOWATCH_MOTO_ENDPOINT is not set: this system test needs the real server. From the repo root run: bash .ci/servers/moto.sh start && source .servers/env/moto.env");
  return v;
}

/** A new bucket (moto accepts the unsigned path-style create). */
async function newBucket(tag: string): Promise<string> {
  const name = unique(tag).toLowerCase();
  const r = await fetch(`${motoEndpoint()}/${name}`, { method: "PUT" });
  if (!r.ok) throw new Error(`cannot create bucket ${name} at ${motoEndpoint()}: HTTP ${r.status} ${await r.text()}`);
  return name;
}

/** A TCP proxy to moto that can cut every connection and refuse new ones for a while. */
async function proxy(target: string): Promise<{ url: string; cut(): void; restore(): Promise<void>; close(): void }> {
  const t = new URL(target);
  const sockets = new Set<Socket>();
  let server: Server | undefined;
  let port = 0;
  const listen = () =>
    new Promise<void>((resolve) => {
      server = createServer((client) => {
        const up = tcpConnect(Number(t.port), t.hostname);
        sockets.add(client).add(up);
        client.pipe(up).pipe(client);
        const end = () => (client.destroy(), up.destroy());
        client.on("error", end).on("close", end);
        up.on("error", end).on("close", end);
      });
      server.listen(port, "127.0.0.1", () => {
        port = (server!.address() as { port: number }).port;
        resolve();
      });
    });
  await listen();
  const cut = () => {
    server?.close();
    server = undefined;
    for (const so of sockets) so.destroy();
    sockets.clear();
  };
  return { url: `http://127.0.0.1:${port}`, cut, restore: listen, close: cut };
}

/** ids [0, n): how many distinct, missing and duplicated. */
function tally(ids: number[], n: number) {
  const seen = new Map<number, number>();
  for (const id of ids) seen.set(id, (seen.get(id) ?? 0) + 1);
  const missing: number[] = [];
  for (let i = 0; i < n; i++) if (!seen.has(i)) missing.push(i);
  return { distinct: seen.size, missing, duplicates: ids.length - seen.size, foreign: [...seen.keys()].filter((k) => k < 0 || k >= n).length };
}

describe("s3 under geowatch run", () => {
  it("file -> s3 store (one object per flush); SIGKILL mid-flow and restart: 0 missing", async () => {
    const endpoint = motoEndpoint();
    const bucket = await newBucket("store");
    const dir = tempDir("s3-store");
    const input = join(dir, "in.ndjson");
    writeFileSync(input, "");
    const N = 4000;
    const cfg = writeConfig(dir, [
      "brokers:",
      "  - name: archive",
      "    count: 100",
      "    sleep_period: 0.1",
      "    consumers:",
      `      - { backend: file, path: ${input}, codec: json }`,
      "    stores_out:",
      `      - { backend: s3, bucket: ${bucket}, endpoint: "${endpoint}", key: "{actiontype}", part_key: "{key}/{seq}.ndjson", codec: ndjson, flush_count: 200, flush_ms: 200 }`,
    ]);
    const first = await startRun(cfg);
    children.push(first);
    // A paced writer, so the kill lands while input is still arriving.
    let written = 0;
    const writing = (async () => {
      for (; written < N; ) {
        const lines: string[] = [];
        for (let j = 0; j < 100; j++, written++) lines.push(JSON.stringify({ metadata: { actiontype: written % 2 ? "update" : "create" }, data: { id: written } }));
        appendFileSync(input, lines.join("\n") + "\n");
        await sleep(40);
      }
    })();
    const reader = s3Store({ bucket, endpoint, partKey: "{key}/{seq}.ndjson" });
    await until("a few objects in the bucket", async () => ((await reader.list("")).length >= 4 ? true : undefined), 60_000, 50);
    first.proc.kill("SIGKILL");
    expect(await first.exited).toBe(null);
    const objectsAtKill = (await reader.list("")).length;
    const writtenAtKill = written;
    await writing;

    const second = await startRun(cfg);
    children.push(second);
    const ids = async () => {
      const out: number[] = [];
      for (const k of ["create", "update"]) {
        const body = await reader.read(k);
        if (body) for (const l of payloadText(body).split("\n")) if (l.trim()) out.push((JSON.parse(l) as { data: { id: number } }).data.id);
      }
      return out;
    };
    let last = "";
    await until(
      "every id in the bucket",
      async () => {
        let error = "";
        const t = tally(await ids().catch((e: unknown) => ((error = String(e)), [])), N);
        last = `${t.distinct} distinct, ${t.missing.length} missing (first ${t.missing.slice(0, 5).join(",")}) ${error}`;
        return t.missing.length === 0 ? true : undefined;
      },
      60_000,
      500,
    ).catch((e: unknown) => {
      throw new Error(`${String(e)}: ${last}\n${second.stderr().slice(-3000)}`);
    });
    expect(await stopRun(second)).toBe(0);
    const t = tally(await ids(), N);
    const objects = await reader.list("");
    console.log(`[s3 store] ${objectsAtKill} objects at SIGKILL; after restart ${objects.length} objects, ${t.distinct} distinct ids, missing ${t.missing.length}, duplicates ${t.duplicates}`);
    expect(objectsAtKill).toBeGreaterThan(0);
    expect(writtenAtKill).toBeLessThan(N); // the kill landed while input was still arriving
    expect(t.foreign).toBe(0);
    expect(t.missing).toEqual([]);
    // Duplicates only from what was flushed but not yet committed at the kill: at most the in-flight window.
    expect(t.duplicates).toBeLessThanOrEqual(2000);
    for (const k of objects) expect(k).toMatch(/^(create|update)\/\d{14}-\d{6}-[0-9a-f]{8}\.ndjson$/);
    await reader.close();
  }, 240_000);

  it("s3 source -> file; SIGKILL mid-flow and restart from the checkpoint: 0 missing", async () => {
    const endpoint = motoEndpoint();
    const bucket = await newBucket("source");
    const dir = tempDir("s3-source");
    const output = join(dir, "out.ndjson");
    const OBJECTS = 80;
    const PER = 50;
    const N = OBJECTS * PER;
    const writer = s3Store({ bucket, endpoint });
    for (let o = 0; o < OBJECTS; o++) {
      const body = Array.from({ length: PER }, (_, j) => JSON.stringify({ id: o * PER + j }) + "\n").join("");
      await writer.write({ key: `in/${String(o).padStart(5, "0")}.ndjson`, body, contentType: "application/x-ndjson", append: false });
    }
    const cfg = writeConfig(dir, [
      "brokers:",
      "  - name: replay",
      "    count: 50",
      "    sleep_period: 0.1",
      "    consumers:",
      `      - { backend: s3, bucket: ${bucket}, endpoint: "${endpoint}", prefix: in/, split: lines, group_id: sys, codec: json }`,
      "    producers:",
      `      - { backend: file, path: ${output}, codec: json }`,
    ]);
    const lines = () => {
      try {
        return readFileSync(output, "utf8").split("\n").filter((l) => l.trim() !== "");
      } catch {
        return [];
      }
    };
    const first = await startRun(cfg);
    children.push(first);
    await until("some output", () => (lines().length >= 200 ? true : undefined), 60_000, 10);
    first.proc.kill("SIGKILL");
    expect(await first.exited).toBe(null);
    const atKill = lines().length;
    const cp = await writer.list(".geowatch");
    expect(atKill).toBeLessThan(N); // the kill landed mid-flow

    const second = await startRun(cfg);
    children.push(second);
    await until("every id in the output", () => (tally(lines().map((l) => (JSON.parse(l) as { id: number }).id), N).missing.length === 0 ? true : undefined), 120_000, 250);
    expect(await stopRun(second)).toBe(0);
    const t = tally(lines().map((l) => (JSON.parse(l) as { id: number }).id), N);
    console.log(`[s3 source] ${atKill} lines at SIGKILL (checkpoint objects: ${cp.length}); after restart ${t.distinct} distinct of ${N}, missing ${t.missing.length}, duplicates ${t.duplicates}`);
    expect(t.foreign).toBe(0);
    expect(t.missing).toEqual([]);
    // Re-read after the restart: only what was delivered but not yet checkpointed when the kill landed.
    expect(t.duplicates).toBeLessThanOrEqual(1000);
    // A third run has nothing to read: the checkpoint covers it all.
    const third = await startRun(cfg);
    children.push(third);
    await until("the third run to be ready", async () => ((await third.ready())?.status === 200 ? true : undefined), 30_000);
    await sleep(1500);
    expect(await stopRun(third)).toBe(0);
    expect(lines().length).toBe(t.distinct + t.duplicates);
    await writer.close();
  }, 240_000);

  it("the endpoint unreachable for 4 s mid-flow: /ready answers 503 during the cut, then 0 missing", async () => {
    const endpoint = motoEndpoint();
    const bucket = await newBucket("cut");
    const dir = tempDir("s3-cut");
    const output = join(dir, "out.ndjson");
    const OBJECTS = 60;
    const PER = 50;
    const N = OBJECTS * PER;
    const writer = s3Store({ bucket, endpoint });
    for (let o = 0; o < OBJECTS; o++) {
      const body = Array.from({ length: PER }, (_, j) => JSON.stringify({ id: o * PER + j }) + "\n").join("");
      await writer.write({ key: `in/${String(o).padStart(5, "0")}.ndjson`, body, contentType: "application/x-ndjson", append: false });
    }
    const p = await proxy(endpoint);
    const cfg = writeConfig(dir, [
      "brokers:",
      "  - name: cut",
      "    count: 20",
      "    sleep_period: 0.1",
      "    consumers:",
      `      - { backend: s3, bucket: ${bucket}, endpoint: "${p.url}", prefix: in/, split: lines, codec: json, max_attempts: 1, connect_timeout_ms: 500 }`,
      "    producers:",
      `      - { backend: file, path: ${output}, codec: json }`,
    ]);
    const lines = () => {
      try {
        return readFileSync(output, "utf8").split("\n").filter((l) => l.trim() !== "");
      } catch {
        return [];
      }
    };
    const run = await startRun(cfg);
    children.push(run);
    try {
      await until("some output", () => (lines().length >= 100 ? true : undefined), 60_000, 10);
      p.cut();
      const atCut = lines().length;
      const during: number[] = [];
      const cutUntil = Date.now() + 4000;
      while (Date.now() < cutUntil) {
        during.push((await run.ready())?.status ?? 0);
        await sleep(250);
      }
      await p.restore();
      await until("/ready 200 again", async () => ((await run.ready())?.status === 200 ? true : undefined), 20_000, 200);
      await until("every id in the output", () => (tally(lines().map((l) => (JSON.parse(l) as { id: number }).id), N).missing.length === 0 ? true : undefined), 120_000, 250);
      expect(await stopRun(run)).toBe(0);
      const t = tally(lines().map((l) => (JSON.parse(l) as { id: number }).id), N);
      console.log(`[s3 cut] ${atCut} lines at the cut; /ready during it: ${during.join(",")}; after: ${t.distinct} distinct, missing ${t.missing.length}, duplicates ${t.duplicates}`);
      expect(atCut).toBeLessThan(N);
      expect(during).toContain(503);
      expect(t.missing).toEqual([]);
      expect(t.foreign).toBe(0);
    } finally {
      p.close();
      await writer.close();
    }
  }, 240_000);

  it("two runs rewrite one geojson key at once (read, merge, conditional write): no feature lost", async () => {
    const endpoint = motoEndpoint();
    const bucket = await newBucket("merge");
    const dir = tempDir("s3-merge");
    const PER = 300;
    const configs = [0, 1].map((w) => {
      const input = join(dir, `in-${w}.ndjson`);
      const features = Array.from({ length: PER }, (_, i) => JSON.stringify({ type: "Feature", properties: { id: w * PER + i }, geometry: { type: "Point", coordinates: [i % 180, w] } }));
      writeFileSync(input, features.join("\n") + "\n");
      return writeConfig(tempDir(`s3-merge-${w}`), [
        "brokers:",
        `  - name: merge-${w}`,
        "    count: 25",
        "    max_tries: 30",
        "    consumers:",
        `      - { backend: file, path: ${input}, codec: geojson }`,
        "    stores_out:",
        `      - { backend: s3, bucket: ${bucket}, endpoint: "${endpoint}", key: points.geojson, codec: geojson, flush_count: 25, flush_ms: 50 }`,
            ]);
    });
    const runs = await Promise.all(configs.map((c) => startRun(c)));
    children.push(...runs);
    const reader = s3Store({ bucket, endpoint });
    const ids = async () => {
      const body = await reader.read("points.geojson");
      return body ? (JSON.parse(payloadText(body)) as { features: Array<{ properties: { id: number } }> }).features.map((f) => f.properties.id) : [];
    };
    let seen = "";
    await until(
      "every feature of both runs in the object",
      async () => {
        const t = tally(await ids().catch((e: unknown) => ((seen = String(e)), [])), 2 * PER);
        seen = `${t.distinct} distinct ${seen}`;
        return t.missing.length === 0 ? true : undefined;
      },
      60_000,
      500,
    ).catch((e: unknown) => {
      throw new Error(`${String(e)}: ${seen}\n${runs.map((r) => r.stderr().slice(-1500)).join("\n---\n")}`);
    });
    for (const r of runs) expect(await stopRun(r)).toBe(0);
    const conflicts = runs.reduce((n, r) => n + r.logs().filter((l) => /changed since it was read/.test(JSON.stringify(l))).length, 0);
    const t = tally(await ids(), 2 * PER);
    console.log(`[s3 merge] ${t.distinct} distinct of ${2 * PER}, missing ${t.missing.length}, duplicates ${t.duplicates}; conflicting rewrites retried: ${conflicts}`);
    expect(t.missing).toEqual([]);
    expect(t.foreign).toBe(0);
    await reader.close();
  }, 240_000);
});
