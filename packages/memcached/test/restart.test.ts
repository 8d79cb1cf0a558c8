// memcached restarted under `geowatch run`: a memcached of this test's own (the CI server's binary, another port,
// killed and started by pid) goes away mid-flow. /ready answers 503 while it is down, the store reconnects when it
// is back, and the file source's committed offset never passes what memcached holds.
import { appendFileSync, readFileSync, statSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { afterAll, describe, expect, it } from "vitest";
import { payloadText } from "@geowatch/core";
import { memcachedStore } from "../src/index.js";
import { ownMemcached, sleep, startRun, tempDir, until, writeConfig, type OwnMemcached, type RunChild } from "./helpers.js";

const cleanup: Array<() => Promise<unknown>> = [];
afterAll(async () => {
  for (const c of cleanup.reverse()) await c().catch(() => undefined);
});

const SOURCES = 8;

describe("memcached restart under geowatch run", () => {
  it("kill memcached mid-flow: /ready 503 while down, reconnect, nothing acknowledged that memcached does not hold", async () => {
    const mc: OwnMemcached = await ownMemcached();
    cleanup.push(() => mc.kill());
    const dir = tempDir("restart");
    const input = join(dir, "requests.log");
    writeFileSync(input, "");
    const cfg = writeConfig(dir, [
      "brokers:",
      "  - name: tiles",
      "    count: 50",
      "    sleep_period: 0.05",
      "    consumers:",
      "      - { backend: file, path: ./requests.log, codec: tilerequest }",
      "    stores_out:",
      `      - { backend: memcached, servers: "${mc.servers}", key: "req/{source}", codec: tilerequest, flush_count: 50, flush_ms: 100, health_interval_ms: 200, timeout_ms: 500 }`,
      "    dead_letter: { backend: file, path: ./dead-letter.ndjson }",
    ]);
    const run: RunChild = await startRun(cfg);
    cleanup.push(() => run.stop(5000));

    // Line i requests tile x = i of source s<i % SOURCES>: the x values in memcached say which lines it holds.
    let written = 0;
    const starts: number[] = []; // byte offset where line i starts
    let bytes = 0;
    const write = (n: number) => {
      let chunk = "";
      for (let j = 0; j < n; j++, written++) {
        const line = `2026-12-01T12:00:00Z;s${written % SOURCES},20,${written},0,png\n`;
        starts.push(bytes);
        bytes += Buffer.byteLength(line);
        chunk += line;
      }
      appendFileSync(input, chunk);
    };
    const offset = () => {
      try {
        return (JSON.parse(readFileSync(`${input}.offset`, "utf8")) as { offset: number }).offset;
      } catch {
        return 0;
      }
    };
    const reader = memcachedStore({ servers: mc.servers, timeoutMs: 500 });
    cleanup.push(() => reader.close());
    const held = async (): Promise<Set<number>> => {
      const xs = new Set<number>();
      for (let s = 0; s < SOURCES; s++) {
        const v = await reader.read(`req/s${s}`);
        if (v) for (const l of payloadText(v).split("\n")) if (l) xs.add(Number(l.split(",")[2]));
      }
      return xs;
    };

    await until("/ready 200", async () => ((await run.ready())?.status === 200 ? true : undefined), 30_000);
    // Phase 1: traffic while memcached is up.
    for (let i = 0; i < 10; i++) {
      write(40);
      await sleep(30);
    }
    await until("the first lines committed", () => (offset() > 0 ? true : undefined), 30_000);

    // Phase 2: memcached goes away while lines keep coming.
    await mc.kill();
    const writer = (async () => {
      for (let i = 0; i < 20; i++) {
        write(20);
        await sleep(100);
      }
    })();
    const down = await until("/ready 503 while memcached is down", async () => {
      const r = await run.ready();
      return r?.status === 503 ? r : undefined;
    }, 15_000);
    expect(down.body.ready).toBe(false);
    const node = down.body.nodes.find((n) => n.state !== "ready");
    expect(node?.state, JSON.stringify(down.body)).toBe("reconnecting");
    expect(node?.error ?? "").toMatch(/unreachable/);
    // Writes in flight at the kill settle (written before it, or failed); after that the offset must not move.
    await sleep(1500);
    const frozen = offset();
    await writer;
    await sleep(1000);
    expect((await run.ready())?.status, "still 503 while down").toBe(503);
    expect(offset(), "no line committed while memcached was down").toBe(frozen);
    expect(frozen).toBeLessThan(bytes);

    // Phase 3: memcached is back (empty: it is a cache); the broker reconnects and delivers the rest.
    await mc.start();
    await until("/ready 200 after the restart", async () => ((await run.ready())?.status === 200 ? true : undefined), 30_000);
    write(200);
    const end = bytes;
    await until("every line committed", () => (offset() === end ? true : undefined), 90_000, 200).catch((e: unknown) => {
      throw new Error(`${String(e)}: offset ${offset()} of ${end}\n${run.stderr().slice(-3000)}`);
    });

    // Every line from the offset frozen during the outage on is in memcached: nothing was acknowledged that it lacks.
    const xs = await held();
    const expected = starts.map((s, i) => [s, i] as const).filter(([s]) => s >= frozen).map(([, i]) => i);
    const missing = expected.filter((i) => !xs.has(i));
    console.log(`[memcached restart] ${written} lines, ${bytes} bytes; offset frozen at ${frozen} during the outage; ${expected.length} lines after it, ${missing.length} missing from memcached`);
    expect(expected.length).toBeGreaterThan(200);
    expect(missing).toEqual([]);
    expect(statSync(input).size).toBe(end);
    expect(await run.stop()).toBe(0);
    const logs = run.stderr();
    expect(logs).toMatch(/store unreachable, retrying/);
  }, 180_000);
});
