// `geowatch run --until-idle` on a Kafka consumer against the real server (bash .ci/servers/kafka.sh start).
// Regression (issue 7, defect 4): the run stopped after one empty receive with most of the topic unread;
// idle now means caught up (no lag on any assigned partition, `Consumer.caughtUp`).
import { spawn } from "node:child_process";
import { readFileSync, rmSync } from "node:fs";
import { join } from "node:path";
import { afterAll, describe, expect, it } from "vitest";
import { APP_DIR, BIN, requireServer, tempDir, unique, writeConfig } from "./helpers.js";
import { committed, createTopics, deleteTopics, endOffsets, produce, tally } from "./kafka-peer.js";

const topics: string[] = [];
const dirs: string[] = [];

afterAll(async () => {
  if (process.env.GEOWATCH_KAFKA_BROKERS) await deleteTopics(topics);
  for (const d of dirs) rmSync(d, { recursive: true, force: true });
});

/** `geowatch run <config> --until-idle`: resolves with the exit code, or fails after `timeoutMs` (then kills it). */
function runUntilIdle(config: string, timeoutMs: number): Promise<{ code: number | null; ms: number; stderr: string }> {
  const t0 = Date.now();
  const proc = spawn(process.execPath, [BIN, "run", config, "--until-idle", "--no-status"], {
    cwd: APP_DIR,
    env: { ...process.env, GEOWATCH_LOG_LEVEL: "info" },
    stdio: ["ignore", "ignore", "pipe"],
  });
  let stderr = "";
  proc.stderr.on("data", (d: Buffer) => (stderr += d.toString()));
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => {
      proc.kill("SIGKILL");
      reject(new Error(`geowatch run --until-idle did not end within ${timeoutMs} ms; log tail:\n${stderr.slice(-2000)}`));
    }, timeoutMs);
    proc.once("exit", (code) => {
      clearTimeout(timer);
      resolve({ code, ms: Date.now() - t0, stderr });
    });
  });
}

function idsIn(path: string): number[] {
  let text: string;
  try {
    text = readFileSync(path, "utf8");
  } catch {
    return [];
  }
  return text
    .split("\n")
    .filter((l) => l.length > 0)
    .map((l) => (JSON.parse(l) as { id: number }).id);
}

describe("kafka --until-idle", () => {
  it("reads the whole topic before it stops, then a rerun with the same group ends at once with nothing", async () => {
    requireServer("GEOWATCH_KAFKA_BROKERS");
    const N = 200_000;
    const input = unique("idle-in");
    const group = unique("idle-group");
    topics.push(input);
    await createTopics([input], 3);
    await produce(input, 0, N, { batch: 5000, keys: 997 });
    expect(await endOffsets(input)).toBe(N);

    const dir = tempDir("kafka-idle");
    dirs.push(dir);
    const output = join(dir, "out.ndjson");
    // A small count and a short receive wait: the consumer's buffer often runs dry between fetches, which is
    // exactly when the old loop took one empty receive for "idle".
    const cfg = writeConfig(dir, [
      "defaults:",
      '  kafka: { brokers: "${GEOWATCH_KAFKA_BROKERS}" }',
      "brokers:",
      "  - name: drain",
      "    count: 50",
      "    sleep_period: 0.05",
      `    consumers: [{ name: in, backend: kafka, topic: ${input}, group_id: ${group}, from_beginning: true, codec: json, max_buffered_records: 200 }]`,
      `    producers: [{ name: out, backend: file, path: ${JSON.stringify(output)}, codec: json }]`,
    ]);

    const first = await runUntilIdle(cfg, 240_000);
    const ids = idsIn(output);
    const t = tally(ids, N);
    const groupCommitted = await committed(group, input);
    console.log(
      `[kafka until-idle] ${N} produced; the run exited ${first.code} after ${first.ms} ms with ${ids.length} lines, distinct ${t.distinct}, missing ${t.missing.length}, duplicates ${t.duplicates}; group committed ${groupCommitted}`,
    );
    expect(first.code, first.stderr.slice(-2000)).toBe(0);
    expect(ids.length, "the run delivered something").toBeGreaterThan(0);
    expect(t.foreign).toBe(0);
    expect(t.missing.slice(0, 20), `${t.missing.length} of ${N} ids never arrived`).toEqual([]);
    expect(t.distinct).toBe(N);
    expect(groupCommitted, "every offset acknowledged before the run stopped").toBe(N);

    // Caught up from the committed offsets alone (no record ever handed out): it must end, and add nothing.
    const second = await runUntilIdle(cfg, 60_000);
    console.log(`[kafka until-idle] rerun with the same group exited ${second.code} after ${second.ms} ms`);
    expect(second.code, second.stderr.slice(-2000)).toBe(0);
    expect(idsIn(output).length).toBe(ids.length);
  }, 360_000);
});
