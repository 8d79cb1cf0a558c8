import { spawn } from "node:child_process";
import { createServer } from "node:http";
import { rmSync, writeFileSync } from "node:fs";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { producerSuite } from "@geowatch/testkit";
import { webhookProducer } from "geowatch-backend-webhook";

// A real HTTP server on loopback that records what it is sent, per path.
const received = new Map();
const server = createServer((req, res) => {
  const chunks = [];
  req.on("data", (c) => chunks.push(c));
  req.on("end", () => {
    if (req.url === "/fail") return res.writeHead(503).end();
    if (!received.has(req.url)) received.set(req.url, []);
    received.get(req.url).push(Buffer.concat(chunks).toString("utf8"));
    res.writeHead(204).end();
  });
});
let base;
beforeAll(async () => {
  await new Promise((r) => server.listen(0, "127.0.0.1", r));
  base = `http://127.0.0.1:${server.address().port}`;
});
afterAll(() => new Promise((r) => server.close(r)));

let channel = 0;
producerSuite("webhook", {
  capabilities: {},
  setup: async () => {
    const path = `/c${++channel}`;
    return {
      producer: () => webhookProducer({ url: base + path }),
      readBack: async (n, timeoutMs) => {
        const until = Date.now() + timeoutMs;
        while ((received.get(path)?.length ?? 0) < n && Date.now() < until) await new Promise((r) => setTimeout(r, 20));
        return received.get(path) ?? [];
      },
    };
  },
});

describe("geowatch run with a backend named by package name", () => {
  // Async spawn: the HTTP server lives in this process, so the event loop must keep running.
  const run = (bin, args, opts) =>
    new Promise((resolve) => {
      const child = spawn(bin, args, { ...opts, stdio: ["ignore", "pipe", "pipe"] });
      let stderr = "";
      child.stderr.on("data", (d) => (stderr += d));
      child.on("exit", (status) => resolve({ status, stderr }));
    });

  it("delivers through the installed third-party backend", async () => {
    const here = dirname(fileURLToPath(import.meta.url));
    const app = join(here, "..");
    writeFileSync(join(app, "input.ndjson"), '{"n":1}\n{"n":2}\n');
    rmSync(join(app, "input.ndjson.offset"), { force: true });
    const bin = join(app, "node_modules", ".bin", "geowatch");
    const r = await run(bin, ["run", "geowatch.yaml", "--until-idle", "--log-level", "warn"], {
      cwd: app,
      env: { ...process.env, WEBHOOK_URL: `${base}/run` },
    });
    expect(r.status, r.stderr).toBe(0);
    expect(received.get("/run")).toEqual(['{"n":1}', '{"n":2}']);
    const bad = await run(bin, ["validate", "geowatch.yaml"], { cwd: app, env: { ...process.env, WEBHOOK_URL: "ftp://x" } });
    expect(bad.status).toBe(2);
    expect(bad.stderr).toMatch(/brokers\[0\]\.producers\[0\]\.url: must be an http\(s\) URL/);
  });
});
