// memcached restarted under `geowatch run`: a memcached of this test's own (the CI server's binary, another port,
// stopped and started by pid) goes away mid-flow. It keeps its items across the restart (memcached's warm restart:
// `-e <memory file>`, a graceful stop with SIGUSR1), so the check is exact: /ready answers 503 while it is down, the
// store reconnects when it is back, and every line before the file source's committed offset is in memcached.
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
  it("restart memcached mid-flow: /ready 503 while down, reconnect, nothing acknowledged that memcached does not hold", async () => {
    const dir = tempDir("restart");
    const mc: OwnMemcached = await ownMemcached({ memoryFile: join(dir, "memcached.mem") });
    cleanup.push(() => mc.kill());
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
    // A paced writer through the whole test: the outage lands while flushes are in flight.
    let writing = true;
    const writer = (async () => {
      while (writing && written < 3000) {
        write(20);
        await sleep(50);
      }
    })();
    await until("the first lines committed", () => (offset() > 0 ? true : undefined), 30_000);

    // Phase 2: memcached goes away while lines keep coming.
    await mc.stop();
    const down = await until("/ready 503 while memcached is down", async () => {
      const r = await run.ready();
      return r?.status === 503 ? r : undefined;
    }, 15_000);
    expect(down.body.ready).toBe(false);
    const node = down.body.nodes.find((n) => n.state !== "ready");
    expect(node?.state, JSON.stringify(down.body)).toBe("reconnecting");
    expect(node?.error ?? "").toMatch(/unreachable/);
    // Writes in flight at the stop settle (written before it, or failed); after that the offset must not move.
    await sleep(1500);
    const frozen = offset();
    await sleep(1500);
    expect((await run.ready())?.status, "still 503 while down").toBe(503);
    expect(offset(), "no line committed while memcached was down").toBe(frozen);
    expect(frozen).toBeLessThan(bytes);

    // Phase 3: memcached is back with its items; the broker reconnects and delivers the rest.
    await mc.start();
    await until("/ready 200 after the restart", async () => ((await run.ready())?.status === 200 ? true : undefined), 30_000);
    await sleep(500);
    writing = false;
    await writer;
    write(200);
    const end = bytes;
    await until("every line committed", () => (offset() === end ? true : undefined), 90_000, 200).catch((e: unknown) => {
      throw new Error(`${String(e)}: offset ${offset()} of ${end}\n${run.stderr().slice(-3000)}`);
    });

    // Every line before the committed offset (all of them, now) is in memcached: nothing was acknowledged that it lacks.
    const xs = await held();
    const committed = offset();
    const expected = starts.map((s, i) => [s, i] as const).filter(([s]) => s < committed).map(([, i]) => i);
    const missing = expected.filter((i) => !xs.has(i));
    const beforeOutage = starts.filter((s) => s < frozen).length;
    console.log(`[memcached restart] ${written} lines, ${bytes} bytes; offset frozen at ${frozen} (${beforeOutage} lines) during the outage; ${expected.length} lines committed, ${missing.length} missing from memcached`);
    expect(beforeOutage).toBeGreaterThan(0);
    expect(expected).toHaveLength(written);
    expect(missing).toEqual([]);
    expect(statSync(input).size).toBe(end);
    expect(await run.stop()).toBe(0);
    const logs = run.stderr();
    expect(logs).toMatch(/store unreachable, retrying/);
  }, 180_000);
});
