// The store and the tilerequest codec under the real `geowatch` CLI against the real memcached:
// keys from templates, `which`, the codec's TTL as a filter, dead letters naming the field, stores_in.
import { readFileSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { describe, expect, it } from "vitest";
import { payloadText } from "@geowatch/core";
import { memcachedStore } from "../src/index.js";
import { memcachedServers, runCli, tempDir, unique, writeConfig } from "./helpers.js";

describe("memcached under geowatch run", () => {
  it("tile requests -> keys per tile (which: last), per source (append, first, index), expired ones filtered, bad lines dead-lettered; stores_in reads back", async () => {
    const servers = memcachedServers();
    const dir = tempDir("tiles");
    const prefix = `${unique("run")}:`;
    const at = (agoMs: number) => new Date(Date.now() - agoMs).toISOString();
    const lines = [
      `${at(20_000)};osm,3,4,2,png`,
      `${at(10_000)};osm,3,4,2,png`,
      `${at(5_000)};osm,5,1,1,png`,
      `${at(5_000)};topo,3,4,2,png`,
      `${at(7200_000)};osm,3,0,0,png`, // older than the codec's ttl: filtered out
      `${at(1_000)};osm,three,4,2,png`,
      `${at(1_000)};osm,3,9,2,png`,
    ];
    writeFileSync(join(dir, "requests.log"), lines.join("\n") + "\n");
    const store = (extra: string) => `{ backend: memcached, servers: "${servers}", key_prefix: "${prefix}", codec: tilerequest, ${extra} }`;
    const cfg = writeConfig(dir, [
      "brokers:",
      "  - name: tiles",
      "    count: 1000",
      "    sleep_period: 0.1",
      "    filter_metadata: { expired: [false] }",
      "    consumers:",
      "      - { backend: file, path: ./requests.log, codec: { name: tilerequest, options: { ttl: 3600 } } }",
      "    stores_out:",
      `      - ${store('name: tiles, key: "tile/{source}/{z}/{x}/{y}.{ext}", mode: snapshot, which: last, ttl: 3600')}`,
      `      - ${store('name: log, key: "log/{source}"')}`,
      `      - ${store('name: first, key: "first/{source}", mode: snapshot, which: first')}`,
      `      - ${store('name: second, key: "second/{source}", mode: snapshot, which: index, which_index: 1')}`,
      "    dead_letter: { backend: file, path: ./dead-letter.ndjson }",
    ]);
    const run = await runCli(["run", cfg, "--until-idle", "--no-status"]);
    expect(run.code, run.stderr.slice(-3000)).toBe(0);

    const s = memcachedStore({ servers, keyPrefix: prefix });
    const get = async (key: string) => {
      const v = await s.read(key);
      return v === undefined ? undefined : payloadText(v);
    };
    try {
      expect(await get("tile/osm/3/4/2.png")).toBe(`${lines[1]}\n`);
      expect(await get("tile/osm/5/1/1.png")).toBe(`${lines[2]}\n`);
      expect(await get("tile/topo/3/4/2.png")).toBe(`${lines[3]}\n`);
      expect(await get("tile/osm/3/0/0.png"), "the expired request made no key").toBeUndefined();
      expect(await get("log/osm")).toBe(`${lines[0]}\n${lines[1]}\n${lines[2]}\n`);
      expect(await get("log/topo")).toBe(`${lines[3]}\n`);
      expect(await get("first/osm")).toBe(`${lines[0]}\n`);
      expect(await get("second/osm")).toBe(`${lines[1]}\n`);
    } finally {
      await s.close();
    }

    const dead = readFileSync(join(dir, "dead-letter.ndjson"), "utf8").trim().split("\n").map((l) => JSON.parse(l) as { reason: string });
    expect(dead).toHaveLength(2);
    expect(dead[0]!.reason).toContain(`tile request line ${JSON.stringify(lines[5])}: z "three" is not a non-negative integer`);
    expect(dead[1]!.reason).toContain("x 9 is outside 0..7 at zoom 3");

    // stores_in: the per-source log read back from memcached, `which: last`, into a file.
    const readback = writeConfig(tempDir("readback"), [
      "brokers:",
      "  - name: readback",
      "    stores_in:",
      `      - ${store('key: "log/osm", which: last')}`,
      "    producers:",
      `      - { backend: file, path: ${join(dir, "out.log")}, codec: tilerequest }`,
    ]);
    const back = await runCli(["run", readback, "--until-idle", "--no-status"]);
    expect(back.code, back.stderr.slice(-3000)).toBe(0);
    const out = readFileSync(join(dir, "out.log"), "utf8").trim().split("\n");
    expect(out.map((l) => (l.startsWith('"') ? (JSON.parse(l) as string) : l))).toEqual([lines[2]]);
  }, 120_000);

  it("a value above the limit and a key memcached cannot hold are dead-lettered with the reason; the rest is stored", async () => {
    const servers = memcachedServers();
    const dir = tempDir("limits");
    const prefix = `${unique("limits")}:`;
    const big = "x".repeat(300);
    const events = [
      { metadata: { actiontype: "small", layer: "roads" }, data: { n: 1 } },
      { metadata: { actiontype: "big", layer: "roads" }, data: { text: big } },
      { metadata: { actiontype: "small", layer: "my roads" }, data: { n: 2 } },
    ];
    writeFileSync(join(dir, "events.ndjson"), events.map((e) => JSON.stringify(e)).join("\n") + "\n");
    const cfg = writeConfig(dir, [
      "brokers:",
      "  - name: limits",
      "    consumers:",
      "      - { backend: file, path: ./events.ndjson, codec: json }",
      "    stores_out:",
      `      - { backend: memcached, servers: "${servers}", key_prefix: "${prefix}", key: "{actiontype}/{layer}", codec: ndjson, max_value_bytes: 200, max_tries: 2 }`,
      "    dead_letter: { backend: file, path: ./dead-letter.ndjson }",
    ]);
    const run = await runCli(["run", cfg, "--until-idle", "--no-status"]);
    expect(run.code, run.stderr.slice(-3000)).toBe(0);
    const dead = readFileSync(join(dir, "dead-letter.ndjson"), "utf8").trim().split("\n").map((l) => JSON.parse(l) as { reason: string });
    const reasons = dead.map((d) => d.reason).sort();
    expect(reasons).toHaveLength(2);
    expect(reasons.find((r) => r.includes(`key "${prefix}big/roads"`))).toMatch(/its value is \d+ bytes, above the largest value the server takes \(200 bytes/);
    expect(reasons.find((r) => r.includes("my roads"))).toMatch(/holds a space or control character/);
    const s = memcachedStore({ servers, keyPrefix: prefix });
    try {
      expect(payloadText((await s.read("small/roads"))!)).toBe(`${JSON.stringify(events[0])}\n`);
      expect(await s.read("big/roads")).toBeUndefined();
    } finally {
      await s.close();
    }
  }, 60_000);

  it("validate lists bad store and codec options with their paths", async () => {
    const dir = tempDir("validate");
    const cfg = writeConfig(dir, [
      "brokers:",
      "  - name: bad",
      "    consumers:",
      "      - { backend: file, path: ./in.log, codec: { name: tilerequest, options: { ttl: 0, zoom: 3 } } }",
      "    stores_out:",
      '      - { backend: memcached, servers: ["127.0.0.1:21211"], key: "k", ttl: -5, ttls: [{ key: "a/*" }], timeout_ms: 0 }',
    ]);
    const r = await runCli(["validate", cfg]);
    expect(r.code).toBe(2);
    const out = r.stdout + r.stderr;
    for (const path of ["stores_out[0].ttl", "stores_out[0].ttls[0].ttl", "stores_out[0].timeout_ms", "codec.options.ttl", "codec.options.zoom"]) expect(out).toContain(path);
  });
});
