import { spawn, spawnSync } from "node:child_process";
import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { describe, expect, it } from "vitest";
import { seededRandom, testSeed } from "@geowatch/testkit";

const BIN = new URL("../bin/geowatch.js", import.meta.url).pathname;
const N = 20_000;
const KILLS = 3;

/**
 * Kills a running `geowatch run` with SIGKILL mid-stream, three times, over a chain that crosses both
 * embedded durable channels: file -> broker "ingest" -> sqlite queue -> broker "deliver" -> file.
 * After restarts every input id must be in the output; duplicates are allowed and counted.
 */
describe("SIGKILL mid-stream over the file channel and the sqlite queue", () => {
  it("loses nothing across kills and restarts", async () => {
    const dir = mkdtempSync(join(tmpdir(), "geowatch-crash-"));
    writeFileSync(join(dir, "input.ndjson"), Array.from({ length: N }, (_, i) => JSON.stringify({ id: i, pad: "x".repeat(40) })).join("\n") + "\n");
    const cfg = join(dir, "geowatch.yaml");
    writeFileSync(
      cfg,
      [
        "brokers:",
        "  - name: ingest",
        "    count: 100",
        "    max_in_flight: 1000",
        "    sleep_period: 0.05",
        "    consumers: [{ backend: file, path: '${GEOWATCH_CONFIG_DIR}/input.ndjson', codec: json }]",
        "    producers: [{ backend: queue, path: '${GEOWATCH_CONFIG_DIR}/q.db', queue: relay, codec: json }]",
        "  - name: deliver",
        "    count: 100",
        "    max_in_flight: 1000",
        "    sleep_period: 0.05",
        "    consumers: [{ backend: queue, path: '${GEOWATCH_CONFIG_DIR}/q.db', queue: relay, codec: json, visibility_timeout_ms: 1500 }]",
        "    producers: [{ backend: file, path: '${GEOWATCH_CONFIG_DIR}/output.ndjson', codec: json }]",
      ].join("\n"),
    );
    const env = { ...process.env, GEOWATCH_LOG_LEVEL: "error" };
    const delivered = () => (existsSync(join(dir, "output.ndjson")) ? readFileSync(join(dir, "output.ndjson"), "utf8").split("\n").filter(Boolean).length : 0);

    const random = seededRandom(testSeed("broker crash"));
    const killedAt: number[] = [];
    for (let k = 0; k < KILLS; k++) {
      const child = spawn(process.execPath, [BIN, "run", cfg], { env, stdio: ["ignore", "ignore", "pipe"] });
      let stderr = "";
      child.stderr.on("data", (d: Buffer) => (stderr += d.toString()));
      // Kill it at a random point of its share of what is left, so each kill lands mid-stream however fast
      // the machine is (a fixed delay let a quiet machine finish before the last kill).
      const before = delivered();
      const share = (N - before) / (KILLS - k + 1);
      const target = before + 1 + Math.floor(random() * share * 0.8);
      const deadline = Date.now() + 30_000;
      while (delivered() < target && Date.now() < deadline) await new Promise((r) => setTimeout(r, 5));
      child.kill("SIGKILL");
      await new Promise((r) => child.once("exit", r));
      killedAt.push(delivered());
      expect(stderr).not.toMatch(/"level":"error"/);
    }
    expect(killedAt.at(-1)!).toBeLessThan(N); // the kills really happened mid-stream

    // Restart until everything is through (leases of killed runs expire after 1.5 s).
    const deadline = Date.now() + 60_000;
    let ids = new Set<number>();
    let lines: string[] = [];
    while (Date.now() < deadline) {
      const r = spawnSync(process.execPath, [BIN, "run", cfg, "--until-idle"], { env, encoding: "utf8", timeout: 60_000 });
      expect(r.status, r.stderr).toBe(0);
      lines = readFileSync(join(dir, "output.ndjson"), "utf8").split("\n").filter(Boolean);
      ids = new Set(lines.map((l) => (JSON.parse(l) as { id: number }).id));
      if (ids.size === N) break;
      await new Promise((r) => setTimeout(r, 500));
    }
    const duplicates = lines.length - ids.size;
    console.log(`[crash] ${N} messages, ${KILLS} SIGKILLs (delivered at kill: ${killedAt.join(", ")}), ${ids.size} distinct delivered, ${duplicates} duplicates`);
    const missing = Array.from({ length: N }, (_, i) => i).filter((i) => !ids.has(i));
    expect(missing).toEqual([]);
    // Duplicates stay within the in-flight window: per kill at most max_in_flight (+ one batch) per broker.
    expect(duplicates).toBeLessThanOrEqual(KILLS * 2 * (1000 + 100));
    rmSync(dir, { recursive: true, force: true });
  }, 180_000);
});
