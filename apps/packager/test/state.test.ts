// The state interface itself on both engines: the same calls give the same answers, attempts and counters stay
// exact under concurrent callers (two connections, as two machines would have), a finished job and
// processed_requests are written together; the PostgreSQL password comes from a file and is never echoed.
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { resolveConfig } from "../src/config.js";
import { openState } from "../src/db.js";
import type { PackagerDb } from "../src/db.js";
import { connectionString } from "../src/pgstate.js";
import { STATE_ENGINES, createPgDatabase, stateFor } from "./helpers.js";

describe.each(STATE_ENGINES)("packager state on %s", (engine) => {
  let dir = "";
  let pgDb: Awaited<ReturnType<typeof createPgDatabase>> | undefined;
  let a: PackagerDb;
  let b: PackagerDb;

  beforeAll(async () => {
    dir = mkdtempSync(join(tmpdir(), "gw-packager-state-"));
    pgDb = engine === "postgres" ? await createPgDatabase() : undefined;
    const config = resolveConfig({ secret: "s", dataDir: dir, ...stateFor(engine, pgDb?.url) });
    // Two connections (two processes, or two machines on PostgreSQL).
    a = openState(config.state);
    b = openState(config.state);
    await Promise.all([a.ready(), b.ready()]);
  });
  afterAll(async () => {
    await a?.close();
    await b?.close();
    await pgDb?.drop();
    rmSync(dir, { recursive: true, force: true });
  });

  it("creates its schema idempotently (a second open of the same database works)", async () => {
    expect(a.engine).toBe(engine);
    const config = resolveConfig({ secret: "s", dataDir: dir, ...stateFor(engine, pgDb?.url) });
    const c = openState(config.state);
    await c.ready();
    expect(await c.counter("nothing")).toBe(0);
    await c.close();
  });

  it("counts attempts atomically: concurrent starts of one job get distinct numbers", async () => {
    await a.addJob({ id: "j1", kind: "datastore", queue: "slow", resourceId: "r1", email: "x@example.org", rowsTotal: 10 });
    const got = await Promise.all(Array.from({ length: 20 }, (_, i) => (i % 2 ? a : b).startJob("j1")));
    expect(got.toSorted((x, y) => x - y)).toEqual(Array.from({ length: 20 }, (_, i) => i + 1));
    await a.unstartJob("j1");
    expect((await b.job("j1"))!.attempts).toBe(19);
    expect(await a.startJob("no-such-job")).toBe(1);
  });

  it("records progress, and a finished job together with processed_requests", async () => {
    await a.progress("j1", 5, null);
    expect(await b.job("j1")).toMatchObject({ state: "running", rowsDone: 5, rowsTotal: 10 });
    expect(await b.openJobs()).toEqual([{ queue: "slow", state: "running", n: 1 }]);
    await a.finishJob("j1", "z.zip");
    expect(await b.job("j1")).toMatchObject({ state: "done", zipName: "z.zip", error: null });
    expect(await b.counter("processed_requests")).toBe(1);
    await a.addJob({ id: "j2", kind: "url", queue: "fast", resourceId: "r2", email: "y@example.org", rowsTotal: null });
    await b.failJob("j2", "retry me", false);
    expect(await a.counter("processed_requests")).toBe(1);
    await b.failJob("j2", "gave up", true);
    expect(await a.job("j2")).toMatchObject({ state: "failed", error: "gave up", rowsTotal: null });
    expect(await a.counter("processed_requests")).toBe(2);
    expect(await a.openJobs()).toEqual([]);
  });

  it("increments counters atomically from concurrent callers", async () => {
    await Promise.all(Array.from({ length: 50 }, (_, i) => (i % 2 ? a : b).bump("hits")));
    expect(await a.counter("hits")).toBe(50);
  });

  it("finds a cached ZIP by key and age, and clears the cache", async () => {
    await a.putCache("k1", "one.zip");
    expect(await b.cached("k1", 60)).toBe("one.zip");
    expect(await b.cached("k2", 60)).toBeUndefined();
    await new Promise((r) => setTimeout(r, 1100));
    expect(await b.cached("k1", 1)).toBeUndefined(); // older than the cache time
    await b.putCache("k1", "two.zip");
    expect(await a.cached("k1", 1)).toBe("two.zip");
    await a.putCache("k3", "three.zip");
    await b.dropCache("k3");
    expect(await a.cached("k3", 60)).toBeUndefined();
    expect(await a.clearCache()).toEqual(["two.zip"]);
    expect(await b.cached("k1", 60)).toBeUndefined();
  });

  it("keeps workers' heartbeats, and statistics with the same totals, ordering and limits", async () => {
    await a.heartbeat("w1", "fast");
    await b.heartbeat("w2", "slow");
    await b.heartbeat("w3", "slow");
    await b.heartbeat("w3", "slow", true);
    expect(await a.liveWorkers(15)).toEqual({ fast: 1, slow: 1 });
    for (const [r, e] of [["r1", "x@example.org"], ["r1", "x@example.org"], ["r1", "y@example.org"], ["r2", "y@example.org"]] as const) await a.logRequest(r, e);
    await b.logError("r2", "y@example.org", "boom 1");
    await b.logError("r3", "z@example.org", "boom 2");
    expect(await a.totals()).toEqual({
      r1: { emails: 2, requests: 3, errors: 0 },
      r2: { emails: 1, requests: 1, errors: 1 },
      r3: { emails: 0, requests: 0, errors: 1 },
      "*": { emails: 2, requests: 4, errors: 2 },
    });
    expect(await b.totals("r1")).toEqual({ r1: { emails: 2, requests: 3, errors: 0 }, "*": { emails: 2, requests: 3, errors: 0 } });
    const reqs = await b.entries("requests", { offset: 0, limit: 10 });
    expect(reqs.map((r) => [r.resource_id, r.email])).toEqual([["r2", "y@example.org"], ["r1", "y@example.org"], ["r1", "x@example.org"], ["r1", "x@example.org"]]);
    expect(reqs[0]).toEqual({ email: "y@example.org", resource_id: "r2", timestamp: expect.any(Number) });
    expect((await b.entries("requests", { offset: 1, limit: 2, resourceId: "r1" })).map((r) => r.email)).toEqual(["x@example.org", "x@example.org"]);
    expect(await a.entries("errors", { offset: 0, limit: 10, email: "z@example.org" })).toEqual([{ email: "z@example.org", resource_id: "r3", timestamp: expect.any(Number), message: "boom 2" }]);
  });
});

describe("PostgreSQL state config", () => {
  it("takes the password from a file (or env), puts it in the connection only, and never echoes it", async () => {
    const dir = mkdtempSync(join(tmpdir(), "gw-packager-pgconf-"));
    try {
      writeFileSync(join(dir, "pw"), "s3cr3t/pa:ss\n");
      const c = resolveConfig({ secret: "s", dataDir: dir, state: { url: "postgres://packager@127.0.0.1:1/packager", passwordFile: join(dir, "pw") } });
      expect(c.state).toMatchObject({ engine: "postgres", password: "s3cr3t/pa:ss" });
      const conn = new URL(connectionString("postgres://packager@127.0.0.1:1/packager", "s3cr3t/pa:ss"));
      expect(decodeURIComponent(conn.password)).toBe("s3cr3t/pa:ss");
      const env = resolveConfig({ secret: "s", dataDir: dir }, { GEOWATCH_PACKAGER_PG_URL: "postgresql://u@h/db", GEOWATCH_PACKAGER_PG_PASSWORD: "p" });
      expect(env.state).toEqual({ engine: "postgres", url: "postgresql://u@h/db", password: "p", poolSize: 4 });
      // Nothing listens on port 1: the error names the failure, not the URL or the password.
      const db = openState(c.state);
      const err = await db.ready().then(
        () => undefined,
        (e: unknown) => e as Error,
      );
      await db.close();
      expect(err?.message).toMatch(/PostgreSQL state/);
      expect(err?.message).not.toContain("s3cr3t");
      expect(() => resolveConfig({ secret: "s", dataDir: dir, state: { engine: "postgres" } }, {})).toThrow(/state\.url/);
      expect(() => resolveConfig({ secret: "s", dataDir: dir, state: { url: "mysql://x:pw@h/db" } }, {})).toThrow(/postgres:\/\//);
      expect(resolveConfig({ secret: "s", dataDir: dir }, {}).state).toEqual({ engine: "sqlite", path: join(dir, "stats.db") });
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});
