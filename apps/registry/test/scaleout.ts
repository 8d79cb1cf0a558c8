/**
 * The scale-out flow on a real engine (Kafka, RabbitMQ): `geowatch-registry serve` (scheduler and indexer)
 * plus two `geowatch-registry worker` processes harvest and check the registry's real QGIS Server and
 * MapServer; one worker is SIGKILLed while it holds a harvest request open, and every harvest and check
 * still gets done. Also: a job that keeps failing ends on `<queue>.dead` with its reason after max_receives.
 */
import { spawn } from "node:child_process";
import type { ChildProcess } from "node:child_process";
import { writeFileSync } from "node:fs";
import { createServer } from "node:http";
import type { AddressInfo } from "node:net";
import { join } from "node:path";
import { GeoWatchError, silentLogger } from "@geowatch/core";
import type { InRecord, ManagedConsumer } from "@geowatch/core";
import { stringify } from "yaml";
import { expect } from "vitest";
import { Registry, loadConfig } from "../src/index.js";
import type { RegistryStorage } from "../src/index.js";
import { sqliteStorage } from "../src/storage/sqlite.js";
import { env, tmpDir } from "./helpers.js";

const BIN = join(import.meta.dirname, "..", "bin", "geowatch-registry.js");

/** A loopback proxy to a real server that holds every request `holdMs` first; it records requests dropped by their client. */
async function slowProxy(target: string, holdMs: number) {
  const seen: string[] = [];
  const dropped: string[] = [];
  const server = createServer((req, res) => {
    const u = new URL(req.url ?? "/", "http://x");
    const key = u.search;
    seen.push(key);
    let gone = false;
    res.on("close", () => {
      if (!res.writableFinished) {
        gone = true;
        dropped.push(key);
      }
    });
    setTimeout(() => {
      if (gone) return;
      const to = new URL(target);
      for (const [k, v] of u.searchParams) to.searchParams.append(k, v);
      fetch(to)
        .then(async (r) => {
          const body = Buffer.from(await r.arrayBuffer());
          res.writeHead(r.status, { "content-type": r.headers.get("content-type") ?? "application/octet-stream" }).end(body);
        })
        .catch(() => res.writeHead(502).end());
    }, holdMs);
  });
  await new Promise<void>((r) => server.listen(0, "127.0.0.1", r));
  const port = (server.address() as AddressInfo).port;
  return {
    url: `http://127.0.0.1:${port}/ows`,
    seen,
    dropped,
    close: () => new Promise<void>((r) => {
      server.closeAllConnections();
      server.close(() => r());
    }),
  };
}

function start(args: string[], cwd: string, log: string[]): ChildProcess {
  const p = spawn(process.execPath, [BIN, ...args], { cwd, stdio: ["ignore", "pipe", "pipe"], env: { ...process.env, GEOWATCH_REGISTRY_CONFIG: "" } });
  p.stdout!.on("data", (d: Buffer) => log.push(d.toString()));
  p.stderr!.on("data", (d: Buffer) => log.push(d.toString()));
  return p;
}

function run(args: string[], cwd: string): Promise<{ code: number | null; out: string }> {
  const log: string[] = [];
  const p = start(args, cwd, log);
  return new Promise((resolve) => p.on("exit", (code) => resolve({ code, out: log.join("") })));
}

async function until<T>(what: string, ms: number, f: () => Promise<T | undefined> | T | undefined): Promise<T> {
  const end = Date.now() + ms;
  for (;;) {
    const v = await f();
    if (v) return v;
    if (Date.now() > end) throw new Error(`timed out after ${ms} ms waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 250));
  }
}

async function stop(p: ChildProcess, signal: NodeJS.Signals = "SIGTERM"): Promise<void> {
  if (p.exitCode !== null || p.signalCode !== null) return;
  const exited = new Promise<void>((r) => p.once("exit", () => r()));
  p.kill(signal);
  const t = setTimeout(() => p.kill("SIGKILL"), 15_000);
  await exited;
  clearTimeout(t);
}

/** The `jobs` section of a run on this engine, channel names unique to the run. */
export type JobsSection = (run: string) => Record<string, unknown>;

export async function scaleOutFlow(jobs: JobsSection): Promise<void> {
  const dir = tmpDir();
  const runId = `t${Date.now().toString(36)}${Math.random().toString(36).slice(2, 6)}`;
  const slow = await slowProxy(env.qgis(), 2500);
  const procs: ChildProcess[] = [];
  const log: string[] = [];
  try {
    const config = {
      storage: { path: "./registry.db" },
      jobs: { ...jobs(runId), workers: 0, max_receives: 3 },
      url_policy: { allow_private: true },
      checks: { interval_ms: 3_600_000, layers: true, timeout_ms: 20_000 },
      http: { port: 0 },
    };
    const cfg = join(dir, "registry.yaml");
    writeFileSync(cfg, stringify(config));
    // Two services behind the slow proxy (the one killed mid-job is among them), four straight to the servers.
    const urls = [`${slow.url}?n=1`, `${slow.url}?n=2`, `${env.qgis()}?n=3`, `${env.qgis()}?n=4`, env.mapserver(), `${env.mapserver()}?n=6`];
    const add = await run(["-c", cfg, "add", "--type", "OGC:WMS", ...urls], dir);
    expect(add.code, add.out).toBe(0);
    expect(add.out.trim().split("\n").filter((l) => /^\d+\tOGC:WMS/.test(l))).toHaveLength(6);

    const serve = start(["-c", cfg, "serve"], dir, log);
    procs.push(serve);
    await until("serve to listen", 20_000, () => log.join("").includes("listening on"));
    const a = start(["-c", cfg, "worker"], dir, log);
    procs.push(a);
    // Worker A is the only worker: the first request the slow proxy holds is A's.
    await until("worker A to start a harvest through the slow proxy", 40_000, () => slow.seen.length > 0);
    const b = start(["-c", cfg, "worker"], dir, log);
    procs.push(b);
    await new Promise((r) => setTimeout(r, 700));
    expect(slow.dropped).toEqual([]);
    a.kill("SIGKILL");
    await until("A's held request to drop", 5_000, () => slow.dropped.length > 0);

    const storage: RegistryStorage = sqliteStorage(join(dir, "registry.db"));
    await storage.init();
    try {
      const services = await until("every service harvested and checked", 100_000, async () => {
        const list = await storage.listServices();
        return list.length === 6 && list.every((s) => s.harvestOk === true && s.layerCount > 0 && s.checksTotal > 0) ? list : undefined;
      }).catch(async (err: Error) => {
        throw new Error(`${err.message}: ${JSON.stringify(await storage.listServices())}\n${log.join("").slice(-4000)}`);
      });
      for (const s of services) expect(s.harvestError ?? null, s.url).toBeNull();
      // The harvest A was killed in the middle of was done again by someone else.
      for (const d of slow.dropped) expect(slow.seen.filter((k) => k === d).length, d).toBeGreaterThan(1);
      const layers = (await Promise.all(services.map((s) => storage.listLayers(s.id)))).flat();
      expect(layers.filter((l) => l.checksTotal > 0).length).toBeGreaterThan(0);
    } finally {
      await storage.close();
    }
    expect(a.signalCode).toBe("SIGKILL");
  } finally {
    for (const p of procs.reverse()) await stop(p);
    await slow.close();
  }
}

/** A storage whose getService fails for one id, so jobs for it fail every time (a fault, on the real storage). */
function failingFor(real: RegistryStorage, id: number): RegistryStorage {
  return new Proxy(real, {
    get(target, prop, receiver) {
      if (prop === "getService") {
        return async (sid: number) => {
          if (sid === id) throw new GeoWatchError("STORE", `storage unavailable for service ${sid}`, { backend: "registry" });
          return target.getService(sid);
        };
      }
      const v = Reflect.get(target, prop, receiver) as unknown;
      return typeof v === "function" ? (v as (...a: unknown[]) => unknown).bind(target) : v;
    },
  });
}

/** A job that fails max_receives times and a record that is not a job both end on `<queue>.dead`, each with its reason. */
export async function deadLetterFlow(jobs: JobsSection, deadConsumer: (dead: string, runId: string, queuePath?: string) => ManagedConsumer): Promise<void> {
  const dir = tmpDir();
  const runId = `d${Date.now().toString(36)}${Math.random().toString(36).slice(2, 6)}`;
  const cfg = join(dir, "registry.yaml");
  writeFileSync(cfg, stringify({ storage: { path: "./registry.db" }, jobs: { ...jobs(runId), max_receives: 3 }, url_policy: { allow_private: true } }));
  const config = loadConfig(cfg, {});
  const real = sqliteStorage(config.storage.path);
  const reg = await new Registry(config, { logger: silentLogger, storage: failingFor(real, 42) }).init();
  const dead = deadConsumer(`${config.jobs.queue}.dead`, runId, config.jobs.path);
  try {
    await reg.enqueue([{ kind: "check", serviceId: 42 }, { kind: "harvest", serviceId: 9999 }]);
    const ac = new AbortController();
    const worker = reg.work({ signal: ac.signal, indexer: false });
    const got: InRecord[] = [];
    await until("two dead letters", 60_000, async () => {
      const recs = await dead.receive(10, { waitMs: 500 });
      got.push(...recs);
      if (recs.length) {
        if (dead.commit && recs.some((r) => r.position)) await dead.commit(recs.filter((r) => r.position).map((r) => r.position!));
        else await dead.ack?.(recs);
      }
      return got.length >= 2;
    });
    ac.abort();
    await worker;
    const byJob = new Map(got.map((r) => [JSON.parse(String(r.value)).serviceId as number, r]));
    const failing = byJob.get(42)!;
    expect(JSON.parse(String(failing.value))).toMatchObject({ kind: "check", serviceId: 42, attempt: 3 });
    expect(failing.headers?.["x-geowatch-dead-reason"]).toContain("storage unavailable for service 42");
    expect(failing.headers?.["geowatch-attempts"]).toBe("3");
    // A job for a service that is gone cannot work: dead at once, with why.
    const gone = byJob.get(9999)!;
    expect(JSON.parse(String(gone.value))).toMatchObject({ serviceId: 9999, attempt: 1 });
    expect(gone.headers?.["x-geowatch-dead-reason"]).toContain("no service 9999");
  } finally {
    await dead.close();
    await reg.close();
  }
}
