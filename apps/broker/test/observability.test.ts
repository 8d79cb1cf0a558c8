import { spawn } from "node:child_process";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { freePort } from "@geowatch/testkit";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { describe, expect, it } from "vitest";

const BIN = new URL("../bin/geowatch.js", import.meta.url).pathname;

async function poll<T>(fn: () => Promise<T | undefined>, ms = 15_000): Promise<T> {
  const until = Date.now() + ms;
  for (;;) {
    const v = await fn().catch(() => undefined);
    if (v !== undefined) return v;
    if (Date.now() > until) throw new Error("timed out");
    await new Promise((r) => setTimeout(r, 100));
  }
}

describe("observability", () => {
  it("serves /metrics, /health and /ready, logs JSON, and exits 0 on SIGTERM after draining", async () => {
    const dir = mkdtempSync(join(tmpdir(), "geowatch-obs-"));
    writeFileSync(join(dir, "in.ndjson"), ['{"n":1}', '{"n":2}', "oops"].join("\n") + "\n");
    const cfg = join(dir, "geowatch.yaml");
    writeFileSync(
      cfg,
      [
        "brokers:",
        "  - name: obs",
        "    sleep_period: 0.1",
        "    consumers: [{ name: in, backend: file, path: '${GEOWATCH_CONFIG_DIR}/in.ndjson', codec: json }]",
        "    producers: [{ name: out, backend: file, path: '${GEOWATCH_CONFIG_DIR}/out.ndjson', codec: json }]",
        "    dead_letter: { backend: file, path: '${GEOWATCH_CONFIG_DIR}/dead.ndjson' }",
      ].join("\n"),
    );
    const port = await freePort();
    const child = spawn(process.execPath, [BIN, "run", cfg, "--metrics-port", String(port)], { stdio: ["ignore", "pipe", "pipe"], env: { ...process.env, GEOWATCH_LOG_LEVEL: "info" } });
    let stderr = "";
    child.stderr.on("data", (d: Buffer) => (stderr += d.toString()));
    const exited = new Promise<number | null>((r) => child.once("exit", (code) => r(code)));
    try {
      const base = `http://127.0.0.1:${port}`;
      const ready = await poll(async () => {
        const r = await fetch(`${base}/ready`);
        return r.status === 200 ? ((await r.json()) as { ready: boolean; nodes: Array<{ node: string; state: string; backend: string }> }) : undefined;
      });
      expect(ready.ready).toBe(true);
      expect(ready.nodes.map((n) => `${n.node}:${n.backend}:${n.state}`)).toEqual(expect.arrayContaining(["in:file:ready", "out:file:ready"]));
      const metrics = await poll(async () => {
        const text = await (await fetch(`${base}/metrics`)).text();
        return text.includes("geowatch_dead_lettered_total") && text.includes('geowatch_acked_total{broker="obs",node="in",backend="file"} 3') ? text : undefined;
      });
      expect(metrics).toMatch(/geowatch_received_total\{broker="obs",node="in",backend="file"\} 3/);
      expect(metrics).toMatch(/geowatch_sent_total\{broker="obs",node="out",backend="file"\} 2/);
      expect(metrics).toMatch(/geowatch_dead_lettered_total\{broker="obs"\} 1/);
      expect(metrics).toMatch(/geowatch_send_latency_seconds_count\{broker="obs",node="out",backend="file"\} \d+/);
      const health = await fetch(`${base}/health`);
      expect(health.status).toBe(200);
      expect((await fetch(`${base}/nope`)).status).toBe(404);
    } finally {
      child.kill("SIGTERM");
    }
    expect(await exited).toBe(0);
    const lines = stderr.split("\n").filter((l) => l.startsWith("{"));
    expect(lines.length).toBeGreaterThan(0);
    for (const l of lines) expect(JSON.parse(l)).toHaveProperty("level");
    expect(stderr).toMatch(/SIGTERM: stopping/);
    rmSync(dir, { recursive: true, force: true });
  }, 60_000);
});

describe("metrics", () => {
  it("counts dead letters the dead-letter sink refused", async () => {
    const { Metrics } = await import("../src/metrics.js");
    const m = new Metrics();
    m.observer("b").deadLetterFailed?.(2, "routing key unresolvable");
    m.observer("b").deadLetterFailed?.(1, "routing key unresolvable");
    expect(m.render()).toMatch(/geowatch_dead_letter_failures_total\{broker="b"\} 3/);
  });
});
