import { readFileSync } from "node:fs";
import { dirname, resolve } from "node:path";
import { GeoWatchError, isGeoWatchError, parseOptions, reasonOf } from "@geowatch/core";
import { parse as parseYaml } from "yaml";
import { z } from "zod";
import { checkJobChannel, JOB_KEYS } from "./channel.js";

const ms = z.number().int("must be an integer").positive("must be > 0");

/** The registry's configuration: one schema gives validation (every problem with its path), types and docs. */
export const registryConfigSchema = z.strictObject({
  storage: z
    .strictObject({
      engine: z.enum(["sqlite", "postgres"]).optional().meta({ default: "sqlite" }).describe("Storage engine: embedded SQLite (FTS5 + R*Tree) or PostgreSQL + PostGIS."),
      path: z.string().min(1).optional().meta({ default: "./registry.db", env: "GEOWATCH_REGISTRY_DB", path: true }).describe("SQLite database file (engine sqlite)."),
      url: z.string().min(1).optional().meta({ env: "GEOWATCH_REGISTRY_PG_URL", secret: true }).describe("PostgreSQL connection URL (engine postgres); PostGIS must be installable in the database."),
    })
    .optional()
    .describe("Where services, layers and checks are kept and searched."),
  jobs: z
    .looseObject({
      backend: z.string().min(1).optional().meta({ default: "queue" }).describe("GeoWatch backend of the job channel and the index buffer: `queue` (node:sqlite, one machine), `kafka` or `amqp` (workers on several machines; install `@geowatch/kafka` or `@geowatch/amqp`), or a backend package name. Every other key of `jobs` that is not listed here is that backend's own option (`brokers`, `url`, ...), validated against its schema."),
      path: z.string().min(1).optional().meta({ default: "./registry-jobs.db", env: "GEOWATCH_REGISTRY_JOBS", path: true }).describe("Backend queue: the database file of the job channel and the index buffer."),
      queue: z.string().min(1).optional().meta({ default: "registry.jobs" }).describe("Queue (Kafka: topic) of harvest and check jobs; failed jobs go to `<queue>.dead`."),
      buffer: z.string().min(1).optional().meta({ default: "registry.index" }).describe("Queue (Kafka: topic) buffering index updates (harvest results, check results) between workers and the index; updates that cannot be applied go to `<buffer>.dead`."),
      workers: z.number().int().min(0).optional().meta({ default: 1 }).describe("Workers `serve` runs in-process (0: only `geowatch-registry worker` processes take jobs)."),
      maxReceives: ms.optional().meta({ default: 5 }).describe("A job (or index update) that failed this many times goes to its dead-letter destination with its reason."),
      groupId: z.string().min(1).optional().meta({ default: "geowatch-registry" }).describe("Backends with consumer groups (Kafka): the workers' group; the indexer uses `<group_id>.index`."),
      partitions: ms.optional().meta({ default: 4 }).describe("Backends that create partitioned topics (Kafka): partitions of the job and buffer topics, the most workers that share the work."),
    })
    .optional()
    .describe("The GeoWatch channels jobs and index updates travel on."),
  urlPolicy: z
    .strictObject({
      allowHosts: z.array(z.string()).optional().describe("Hosts (names, *.wildcards, addresses, CIDR ranges) that may be harvested; empty: any public host."),
      denyHosts: z.array(z.string()).optional().describe("Hosts never harvested, checked before allowHosts."),
      allowPrivate: z.boolean().optional().meta({ default: false }).describe("Allow private, loopback and link-local addresses (refused by default)."),
    })
    .optional()
    .describe("Which service URLs may be fetched (every harvest and check request, every redirect hop)."),
  checks: z
    .strictObject({
      intervalMs: ms.optional().meta({ default: 3600000 }).describe("How often every monitored service is checked."),
      recent: ms.optional().meta({ default: 10 }).describe("Recent reliability is over this many last checks."),
      perHost: ms.optional().meta({ default: 2 }).describe("Most requests at once to one host."),
      concurrency: ms.optional().meta({ default: 16 }).describe("Most check requests at once per worker."),
      timeoutMs: ms.optional().meta({ default: 30000 }).describe("A check request slower than this fails."),
      layers: z.boolean().optional().meta({ default: true }).describe("Also check every monitored layer (GetMap/GetTile/query), not only the service."),
    })
    .optional()
    .describe("Uptime checks."),
  harvest: z
    .strictObject({
      intervalMs: ms.optional().meta({ default: 86400000 }).describe("How often every service is harvested again."),
      maxRecords: ms.optional().meta({ default: 10000 }).describe("Most records taken from one catalogue (CSW, OGC API Records)."),
      timeoutMs: ms.optional().meta({ default: 60000 }).describe("A capabilities request slower than this fails."),
      maxBytes: ms.optional().meta({ default: 52428800 }).describe("Largest capabilities document accepted."),
    })
    .optional()
    .describe("Harvesting."),
  http: z
    .strictObject({
      host: z.string().optional().meta({ default: "127.0.0.1" }).describe("Address to listen on."),
      port: z.number().int().min(0).max(65535).optional().meta({ default: 8700 }).describe("Port to listen on (0: any free port)."),
      publicUrl: z.string().optional().describe("The URL clients reach the registry at (advertised in CSW capabilities). Default: http://host:port."),
    })
    .optional()
    .describe("The HTTP server of `serve`."),
  csw: z
    .strictObject({
      username: z.string().min(1).optional().meta({ default: "admin" }).describe("User allowed to send CSW Transactions."),
      password: z.string().min(1).optional().meta({ env: "GEOWATCH_REGISTRY_CSW_PASSWORD", secret: true }).describe("Its password; without one, Transactions are refused."),
      passwordFile: z.string().min(1).optional().meta({ path: true }).describe("A file holding the password (first line)."),
    })
    .optional()
    .describe("CSW Transaction credentials (HTTP Basic, compared in constant time)."),
});

export type RegistryConfigInput = z.input<typeof registryConfigSchema>;

/** The config with every default filled in. */
export interface RegistryConfig {
  storage: { engine: "sqlite" | "postgres"; path: string; url?: string };
  jobs: {
    backend: string;
    path: string;
    queue: string;
    buffer: string;
    workers: number;
    maxReceives: number;
    groupId: string;
    partitions: number;
    /** The backend's own options (every other key of `jobs`), as written. */
    options: Record<string, unknown>;
    /** Relative paths among them resolve against this folder (the config file's). */
    baseDir: string;
  };
  urlPolicy: { allowHosts?: string[]; denyHosts?: string[]; allowPrivate: boolean };
  checks: { intervalMs: number; recent: number; perHost: number; concurrency: number; timeoutMs: number; layers: boolean };
  harvest: { intervalMs: number; maxRecords: number; timeoutMs: number; maxBytes: number };
  http: { host: string; port: number; publicUrl?: string };
  csw: { username: string; password?: string };
}

/** Validates a config object (camelCase keys) and fills defaults, env fallbacks and paths relative to `baseDir`. */
export function resolveConfig(input: RegistryConfigInput = {}, baseDir = process.cwd(), env = process.env): RegistryConfig {
  const c = parseOptions(registryConfigSchema, input, "registry config", "registry") as RegistryConfigInput;
  const rel = (p: string) => resolve(baseDir, p);
  const pgUrl = c.storage?.url ?? env.GEOWATCH_REGISTRY_PG_URL;
  let password = c.csw?.password ?? env.GEOWATCH_REGISTRY_CSW_PASSWORD;
  if (!password && c.csw?.passwordFile) password = readFileSync(rel(c.csw.passwordFile), "utf8").split("\n")[0]!.trim();
  return {
    storage: {
      engine: c.storage?.engine ?? (c.storage?.url ? "postgres" : "sqlite"),
      path: rel(c.storage?.path ?? env.GEOWATCH_REGISTRY_DB ?? "./registry.db"),
      ...(pgUrl ? { url: pgUrl } : {}),
    },
    jobs: {
      backend: c.jobs?.backend ?? "queue",
      path: rel(c.jobs?.path ?? env.GEOWATCH_REGISTRY_JOBS ?? "./registry-jobs.db"),
      queue: c.jobs?.queue ?? "registry.jobs",
      buffer: c.jobs?.buffer ?? "registry.index",
      workers: c.jobs?.workers ?? 1,
      maxReceives: c.jobs?.maxReceives ?? 5,
      groupId: c.jobs?.groupId ?? "geowatch-registry",
      partitions: c.jobs?.partitions ?? 4,
      options: backendOptions(c.jobs),
      baseDir,
    },
    urlPolicy: {
      ...(c.urlPolicy?.allowHosts ? { allowHosts: c.urlPolicy.allowHosts } : {}),
      ...(c.urlPolicy?.denyHosts ? { denyHosts: c.urlPolicy.denyHosts } : {}),
      allowPrivate: c.urlPolicy?.allowPrivate ?? false,
    },
    checks: {
      intervalMs: c.checks?.intervalMs ?? 3_600_000,
      recent: c.checks?.recent ?? 10,
      perHost: c.checks?.perHost ?? 2,
      concurrency: c.checks?.concurrency ?? 16,
      timeoutMs: c.checks?.timeoutMs ?? 30_000,
      layers: c.checks?.layers ?? true,
    },
    harvest: {
      intervalMs: c.harvest?.intervalMs ?? 86_400_000,
      maxRecords: c.harvest?.maxRecords ?? 10_000,
      timeoutMs: c.harvest?.timeoutMs ?? 60_000,
      maxBytes: c.harvest?.maxBytes ?? 50 * 1024 * 1024,
    },
    http: { host: c.http?.host ?? "127.0.0.1", port: c.http?.port ?? 8700, ...(c.http?.publicUrl ? { publicUrl: c.http.publicUrl } : {}) },
    csw: { username: c.csw?.username ?? "admin", ...(password ? { password } : {}) },
  };
}

/** The backend's own options in a `jobs` section: every key the registry does not name (a resolved config's `options` re-read as such). */
function backendOptions(jobs: Record<string, unknown> | undefined): Record<string, unknown> {
  const out: Record<string, unknown> = {};
  for (const [k, v] of Object.entries(jobs ?? {})) {
    if ((JOB_KEYS as readonly string[]).includes(k) || k === "baseDir") continue;
    if (k === "options" && v && typeof v === "object" && !Array.isArray(v)) Object.assign(out, v);
    else out[k] = v;
  }
  return out;
}

const toCamel = (k: string) => k.replace(/_([a-z])/g, (_m, c: string) => c.toUpperCase());

function camelKeys(v: unknown): unknown {
  if (Array.isArray(v)) return v.map(camelKeys);
  if (v && typeof v === "object") return Object.fromEntries(Object.entries(v).map(([k, x]) => [toCamel(k), camelKeys(x)]));
  return v;
}

/**
 * Reads and resolves a config file like `loadConfig`, and checks its `jobs` section against the backend's
 * schemas (finding the backend package) in the same pass: one CONFIG error lists every problem, the
 * registry's and the backend's, each with its path.
 */
export async function loadCheckedConfig(path: string | undefined, env = process.env): Promise<RegistryConfig> {
  let config: RegistryConfig | undefined;
  let first: unknown;
  try {
    config = loadConfig(path, env);
  } catch (err) {
    if (!isGeoWatchError(err, "CONFIG") || !path) throw err;
    first = err;
  }
  let jobsProblem: unknown;
  try {
    // With the rest of the file invalid, the jobs section is still checked on its own.
    await checkJobChannel(config ?? jobsOnly(path!, env));
  } catch (err) {
    if (!first) throw err;
    jobsProblem = err;
  }
  if (!first) return config!;
  if (!jobsProblem || !isGeoWatchError(jobsProblem, "CONFIG")) throw first;
  const strip = (e: unknown) => reasonOf(e).replace(/^(\[[^\]]*\] )*/, "").replace(/^invalid registry config( options)?:? ?/, "");
  // The registry schema reports camelCase paths (keys were converted on reading); say them as the file does.
  const snakePaths = (t: string) => t.replace(/\b([a-z][A-Za-z0-9]*(?:\.[a-z][A-Za-z0-9]*)+):/g, (m) => m.replace(/[A-Z]/g, (c) => `_${c.toLowerCase()}`));
  throw new GeoWatchError("CONFIG", `invalid registry config: ${snakePaths(strip(first))}; ${strip(jobsProblem)}`, { backend: "registry" });
}

function jobsOnly(path: string, env: NodeJS.ProcessEnv): RegistryConfig {
  const text = readFileSync(path, "utf8");
  const raw = ((path.endsWith(".json") ? JSON.parse(text) : parseYaml(text)) ?? {}) as Record<string, unknown>;
  const jobs = camelKeys(raw.jobs ?? {}) as Record<string, unknown>;
  // Only the registry's own jobs keys can be wrong here (they were reported above): keep the backend's.
  const own = Object.fromEntries(Object.entries(jobs).filter(([k]) => k === "backend" || !(JOB_KEYS as readonly string[]).includes(k)));
  return resolveConfig({ jobs: own as RegistryConfigInput["jobs"] }, dirname(resolve(path)), env);
}

/** Reads a YAML or JSON config file (snake_case keys, as every GeoWatch config) and resolves it. */
export function loadConfig(path: string | undefined, env = process.env): RegistryConfig {
  if (!path) return resolveConfig({}, process.cwd(), env);
  const text = readFileSync(path, "utf8");
  const raw = (path.endsWith(".json") ? JSON.parse(text) : parseYaml(text)) ?? {};
  return resolveConfig(camelKeys(raw) as RegistryConfigInput, dirname(resolve(path)), env);
}
