import { writeFileSync } from "node:fs";
import { join } from "node:path";
import { describe, expect, it } from "vitest";
import { checkJobChannel, loadCheckedConfig, loadConfig, main, resolveConfig } from "../src/index.js";
import { tmpDir } from "./helpers.js";

const config = (jobs: Record<string, unknown>) => resolveConfig({ jobs: jobs as never }, tmpDir(), {});

describe("jobs.backend: the job channel's backend, found and validated like a geowatch config's", () => {
  it("lists every problem of the backend's options in one error, each with its jobs.* path", async () => {
    const err = await checkJobChannel(config({ backend: "amqp", url: "amqp://127.0.0.1", prefetch: 0, nope: 1, heartbeat: "x" })).catch((e: Error) => e);
    expect(err).toBeInstanceOf(Error);
    const msg = (err as Error).message;
    expect(msg).toMatch(/jobs\.prefetch: /);
    expect(msg).toMatch(/jobs\.nope: unknown option of backend amqp \(known: .*prefetch/);
    expect(msg).toMatch(/jobs\.heartbeat: /);
    expect((err as { code?: string }).code).toBe("CONFIG");
  });

  it("refuses channel names set through the backend's own keys (jobs.queue and jobs.buffer name them)", async () => {
    await expect(checkJobChannel(config({ backend: "kafka", brokers: ["127.0.0.1:1"], topic: "x" }))).rejects.toThrow(/jobs\.topic: set by the registry/);
  });

  it("accepts valid Kafka and RabbitMQ sections without connecting; the queue backend is the default", async () => {
    await checkJobChannel(config({ backend: "kafka", brokers: ["127.0.0.1:1"], partitions: 2, client_id: "reg" }));
    await checkJobChannel(config({ backend: "amqp", url: "amqp://127.0.0.1:1", prefetch: 8 }));
    const c = config({});
    expect(c.jobs.backend).toBe("queue");
    await checkJobChannel(c);
  });

  it("a backend package that is not installed is a config error naming what to install", async () => {
    const notInstalled = (s: string) => Promise.reject(Object.assign(new Error(`Cannot find package '${s}'`), { code: "ERR_MODULE_NOT_FOUND" }));
    const err = await checkJobChannel(config({ backend: "kafka", brokers: ["127.0.0.1:1"] }), notInstalled).catch((e: Error) => e);
    expect((err as Error).message).toMatch(/jobs\.backend: .*kafka.*npm install @geowatch\/kafka/);
    expect((err as { code?: string }).code).toBe("CONFIG");
  });

  it("the CLI exits 2 with the problem's path when a worker's jobs section is wrong", async () => {
    const dir = tmpDir();
    const file = join(dir, "registry.yaml");
    writeFileSync(file, "storage: { path: ./r.db }\njobs:\n  backend: amqp\n  url: amqp://127.0.0.1:1\n  prefetch: -1\n");
    expect(loadConfig(file, {}).jobs.options).toEqual({ url: "amqp://127.0.0.1:1", prefetch: -1 });
    const writes: string[] = [];
    const orig = process.stderr.write.bind(process.stderr);
    process.stderr.write = ((s: string) => (writes.push(String(s)), true)) as typeof process.stderr.write;
    let code: number;
    try {
      code = await main(["-c", file, "--quiet", "worker", "--until-idle"]);
    } finally {
      process.stderr.write = orig;
    }
    expect(code).toBe(2);
    expect(writes.join("")).toMatch(/jobs\.prefetch: /);
  });
});

describe("one pass over the whole config", () => {
  it("the registry's own problems and the backend's come in one error, each with its path", async () => {
    const dir = tmpDir();
    const file = join(dir, "registry.yaml");
    writeFileSync(file, "checks: { per_host: 0 }\nhttp: { port: -1 }\njobs:\n  backend: kafka\n  brokers: [127.0.0.1:1]\n  fetch_min_bytes: -5\n  nope: true\n");
    const err = await loadCheckedConfig(file, {}).catch((e: Error) => e);
    const msg = (err as Error).message;
    expect(msg).toMatch(/checks\.perHost|checks\.per_host/);
    expect(msg).toMatch(/http\.port/);
    expect(msg).toMatch(/jobs\.fetch_min_bytes: /);
    expect(msg).toMatch(/jobs\.nope: unknown option of backend kafka/);
    expect((err as { code?: string }).code).toBe("CONFIG");
  });
});
