// The job channel nodes are checked at start, every problem with its jobs.* path; a backend that is not
// installed says what to install. No server is contacted (nothing connects before the first job).
import { rmSync } from "node:fs";
import { describe, expect, it } from "vitest";
import { startPackager } from "../src/app.js";
import { testConfig } from "./helpers.js";

async function startError(jobs: Record<string, unknown>): Promise<Error & { issues?: { path: string; message: string }[] }> {
  const config = testConfig({ jobs });
  try {
    const app = await startPackager(config);
    await app.close();
    throw new Error("started");
  } catch (err) {
    return err as Error & { issues?: { path: string; message: string }[] };
  } finally {
    rmSync(config.dataDir, { recursive: true, force: true });
  }
}

describe("job channel nodes", () => {
  it("a backend that is not installed is a config error naming the package", async () => {
    const err = await startError({ slow: { backend: "nosuchengine", topic: "x" } });
    expect(err.message).toMatch(/jobs\.slow\.backend: .*npm install @geowatch\/nosuchengine/);
  });

  it("options are checked against the backend's schema with jobs.* paths", async () => {
    const err = await startError({ fast: { backend: "kafka", brokers: "127.0.0.1:1", topic: "t", group_id: "g", no_such_option: 1 } });
    expect(err.message).toMatch(/jobs\.fast.*no_such_option/);
  });

  it("a consumer-only key (group_id) is kept from the producer end, so one node serves both", async () => {
    const config = testConfig({ workers: { fast: 0, slow: 0 }, jobs: { slow: { backend: "kafka", brokers: "127.0.0.1:1", topic: "t", group_id: "g", from_beginning: true } } });
    const app = await startPackager(config);
    expect(app.service.onLocalQueue()).toBe(false);
    await app.close();
    rmSync(config.dataDir, { recursive: true, force: true });
  });
});
