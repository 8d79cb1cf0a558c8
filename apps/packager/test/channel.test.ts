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

describe("README configs", () => {
  it("every yaml block of the README is a valid config whose job channels and sources resolve and validate", async () => {
    const { readFileSync, writeFileSync, mkdtempSync } = await import("node:fs");
    const { tmpdir } = await import("node:os");
    const { join } = await import("node:path");
    const { readConfigFile, resolveConfig } = await import("../src/config.js");
    const { openSender } = await import("../src/channel.js");
    const { openSource } = await import("../src/sources/store.js");
    const readme = readFileSync(join(import.meta.dirname, "..", "README.md"), "utf8");
    const blocks = [...readme.matchAll(/```yaml\n([\s\S]*?)```/g)].map((m) => m[1]!);
    expect(blocks.length).toBeGreaterThanOrEqual(5);
    const dir = mkdtempSync(join(tmpdir(), "gw-packager-readme-"));
    let channels = 0;
    let sources = 0;
    try {
      for (const [i, text] of blocks.entries()) {
        const file = join(dir, `block${i}.yaml`);
        writeFileSync(file, text);
        // The blocks name secret files of a real host; the secret comes from the env here.
        const config = resolveConfig({ ...readConfigFile(file), dataDir: join(dir, `data${i}`) }, { GEOWATCH_PACKAGER_SECRET: "s" });
        for (const q of ["fast", "slow"] as const) {
          if (!config.jobs[q]) continue;
          const s = await openSender(config, q);
          expect(s.backend).toBe(String(config.jobs[q]!.backend));
          await s.close();
          channels++;
        }
        for (const name of Object.keys(config.sources)) {
          await (await openSource(config, name)).store.close();
          sources++;
        }
      }
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
    expect(channels).toBe(6);
    expect(sources).toBe(2);
  });
});
