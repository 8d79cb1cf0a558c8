/** The packager's configuration: one zod schema gives validation, types and the README's options table. */
import { readFileSync } from "node:fs";
import { join, resolve } from "node:path";
import { GeoWatchError, parseOptions } from "@geowatch/core";
import { parse as parseYaml } from "yaml";
import { z } from "zod";

const nonEmpty = z.string().min(1, "must be a non-empty string");
const posInt = z.number().int("must be an integer").positive("must be > 0");

const emailSchema = z.strictObject({
  host: nonEmpty.optional().meta({ env: "GEOWATCH_SMTP_HOST", default: "localhost" }).describe("SMTP host."),
  port: posInt.max(65535).optional().meta({ env: "GEOWATCH_SMTP_PORT", default: 587 }).describe("SMTP port."),
  secure: z.boolean().optional().meta({ default: false }).describe("TLS from the first byte (port 465)."),
  starttls: z.enum(["required", "opportunistic", "off"]).optional().meta({ default: "required" }).describe("STARTTLS policy."),
  user: nonEmpty.optional().meta({ env: "GEOWATCH_SMTP_USER" }).describe("SMTP AUTH user."),
  password: nonEmpty.optional().meta({ env: "GEOWATCH_SMTP_PASSWORD", secret: true }).describe("SMTP AUTH password; never logged."),
  passwordFile: nonEmpty.optional().meta({ env: "GEOWATCH_SMTP_PASSWORD_FILE", path: true }).describe("File holding the SMTP password."),
  ca: nonEmpty.optional().meta({ env: "GEOWATCH_SMTP_CA", path: true }).describe("PEM file the server certificate must chain to."),
  from: nonEmpty.optional().meta({ default: "(nobody)" }).describe("EMAIL_FROM: the sender; placeholders as in `subject`."),
  subject: nonEmpty
    .optional()
    .meta({ default: "Resource from {ckan_host}" })
    .describe("EMAIL_SUBJECT. Placeholders as in ckanpackager: {resource_id}, {zip_file_name}, {ckan_host}, plus {link} and {expires}."),
  body: nonEmpty.optional().describe("EMAIL_BODY, same placeholders. Default: ckanpackager's text with the download link."),
});

const stateSchema = z.strictObject({
  engine: z
    .enum(["sqlite", "postgres"])
    .optional()
    .meta({ default: "sqlite" })
    .describe("Engine of the packager's state (jobs, progress, cache index, statistics, heartbeats): node:sqlite in <data_dir>/stats.db (one machine), or PostgreSQL (shared by every machine). Default: postgres when `url` is set."),
  path: nonEmpty.optional().meta({ path: true }).describe("SQLite file of the state (engine sqlite). Default: <data_dir>/stats.db."),
  url: nonEmpty
    .optional()
    .meta({ env: "GEOWATCH_PACKAGER_PG_URL", secret: true })
    .describe("PostgreSQL connection URL naming the database (engine postgres), `postgres://packager@db.example.org:5432/packager`; the tables are created in it if missing. Never logged."),
  password: nonEmpty.optional().meta({ env: "GEOWATCH_PACKAGER_PG_PASSWORD", secret: true }).describe("PostgreSQL password, when not in the URL; never logged."),
  passwordFile: nonEmpty.optional().meta({ env: "GEOWATCH_PACKAGER_PG_PASSWORD_FILE", path: true }).describe("File holding the PostgreSQL password (first line)."),
  poolSize: posInt.max(100).optional().meta({ default: 4 }).describe("PostgreSQL connections per process (each worker thread has its own pool)."),
});

export const packagerConfigSchema = z.strictObject({
  host: nonEmpty.optional().meta({ default: "127.0.0.1", env: "GEOWATCH_PACKAGER_HOST" }).describe("HOST: address the HTTP service listens on."),
  port: z.number().int().min(0).max(65535).optional().meta({ default: 8765, env: "GEOWATCH_PACKAGER_PORT" }).describe("PORT (0: any free port)."),
  secret: nonEmpty.optional().meta({ env: "GEOWATCH_PACKAGER_SECRET", secret: true }).describe("SECRET shared with the callers (required, or secret_file)."),
  secretFile: nonEmpty.optional().meta({ env: "GEOWATCH_PACKAGER_SECRET_FILE", path: true }).describe("File holding the shared secret."),
  dataDir: nonEmpty.optional().meta({ default: "./packager-data", path: true }).describe("Directory of the job queue, the state database (node:sqlite engine), the ZIP store and temp files."),
  storeDirectory: nonEmpty.optional().meta({ path: true }).describe("STORE_DIRECTORY for finished ZIPs. Default: <data_dir>/store."),
  tempDirectory: nonEmpty.optional().meta({ path: true }).describe("TEMP_DIRECTORY for ZIPs being written. Default: <data_dir>/tmp (same filesystem as the store, so the rename is atomic)."),
  queuePath: nonEmpty.optional().meta({ path: true }).describe("SQLite file of the job queue (@geowatch/queue). Default: <data_dir>/jobs.db."),
  state: stateSchema
    .optional()
    .describe("Where the packager keeps its state. node:sqlite by default; PostgreSQL (`state: { engine: postgres, url: ... }`) when serve and workers run on several machines."),
  cacheTime: posInt.optional().meta({ default: 86400 }).describe("CACHE_TIME in seconds: a request with the same data parameters reuses the ZIP this long."),
  pageSize: posInt.max(32000).optional().meta({ default: 5000 }).describe("PAGE_SIZE: rows per datastore_search call (CKAN caps it at 32000)."),
  slowRequest: posInt.optional().meta({ default: 50000 }).describe("SLOW_REQUEST: from this many rows (or an unknown count) a job goes to the slow queue."),
  workers: z
    .strictObject({
      fast: z.number().int().min(0).optional().meta({ default: 1 }).describe("In-process workers on the fast queue."),
      slow: z.number().int().min(0).optional().meta({ default: 1 }).describe("In-process workers on the slow queue."),
    })
    .optional()
    .describe("Workers run by `serve` (0 leaves a queue to `geowatch-packager worker --queue ...` processes)."),
  workerMemoryMb: z
    .number()
    .int("must be an integer")
    .min(48)
    .optional()
    .meta({ default: 128 })
    .describe("Heap limit (MB) of the worker thread that runs the jobs: keeps the process's memory flat however large a job is."),
  visibilityTimeoutMs: posInt.optional().meta({ default: 30000 }).describe("A job whose worker died is retried this long after its lease was last extended."),
  maxAttempts: posInt.optional().meta({ default: 5 }).describe("Deliveries of a job before it is dead-lettered as failed."),
  jobs: z
    .strictObject({
      fast: z
        .record(z.string(), z.unknown())
        .optional()
        .describe("The fast queue as a GeoWatch channel node, spelled as in a broker config (`{ backend: kafka, topic: packager.fast, group_id: packager-workers }`). Default: @geowatch/queue in <data_dir>/jobs.db."),
      slow: z.record(z.string(), z.unknown()).optional().describe("The slow queue as a channel node, like `fast`."),
      deadLetters: z
        .array(z.record(z.string(), z.unknown()))
        .optional()
        .describe(
          "Channel nodes where the queues dead-letter jobs they gave up on (a RabbitMQ `dead_letter_exchange` queue, an SQS redrive queue): `serve` reads them and marks those jobs `failed` with the reason. Default: `<queue>.dead` of each @geowatch/queue node.",
        ),
      create: z.boolean().optional().meta({ default: true }).describe("Create each node's topic or queue at start where the backend can (Kafka, RabbitMQ); SQS queues must exist."),
    })
    .optional()
    .describe("The job channels. Kafka, RabbitMQ (`amqp`) or SQS carry jobs to workers on several machines (install `@geowatch/kafka`, `@geowatch/amqp` or `@geowatch/sqs`); job status is kept in the packager's state (`state`: node:sqlite, or PostgreSQL across machines)."),
  sources: z
    .record(z.string().regex(/^[A-Za-z0-9_.-]+$/, "source names are letters, digits, _ . -"), z.record(z.string(), z.unknown()))
    .optional()
    .describe(
      "Named sources `/package_source` reads (issue 11 part 3): each a GeoWatch store node as a broker config spells it, `{ backend: file, path: ./layers }` or `{ backend: wfs, url: ..., version: 2.0.0 }` (install the backend's package). A request names the source and the key to read (a file name, a WFS type name).",
    ),
  allowHosts: z.array(nonEmpty).optional().meta({ default: [] }).describe("Hosts a request's api_url or resource_url may name; empty: any public host. Private, loopback and link-local hosts only when listed here."),
  allowPrivate: z.boolean().optional().meta({ default: false }).describe("Allow every private, loopback and link-local address (a packager inside a private network)."),
  requestTimeoutMs: posInt.optional().meta({ default: 60000 }).describe("Time limit of one CKAN call (a whole datastore_search page); a resource download gets at least an hour."),
  maxDownloadBytes: posInt.optional().meta({ default: 10 * 1024 ** 3 }).describe("Largest resource file /package_url fetches."),
  publicUrl: nonEmpty.optional().describe("Base URL of this service in mailed links. Default: http://<host>:<port>."),
  linkExpiry: posInt.optional().meta({ default: 7 * 86400 }).describe("Seconds a mailed download link stays valid."),
  email: emailSchema.optional().describe("Mail settings (SMTP through @geowatch/email) and the EMAIL_* templates."),
  dwc: z
    .strictObject({
      idField: nonEmpty.optional().meta({ default: "_id" }).describe("DWC_ID_FIELD: the row id in the archive."),
      dynamicTerm: nonEmpty.optional().meta({ default: "dynamicProperties" }).describe("DWC_DYNAMIC_TERM: where unmatched fields go, as JSON."),
      extensionFields: z
        .record(
          z.string(),
          z.strictObject({
            extension: z.enum(["multimedia"]).describe("The extension rows go to."),
            fields: z.record(z.string(), z.string()).describe("The extension's fields with their defaults."),
          }),
        )
        .optional()
        .describe("DWC_EXTENSION_FIELDS: fields holding a JSON list of extension rows. Default: associatedMedia -> multimedia."),
    })
    .optional()
    .describe("Darwin Core Archive settings (/package_dwc_archive)."),
  logLevel: z.enum(["debug", "info", "warn", "error"]).optional().meta({ default: "info" }).describe("Log level."),
});

export type PackagerConfigInput = z.input<typeof packagerConfigSchema>;

/** The state engine, resolved: a SQLite file, or a PostgreSQL URL with the password given apart (never logged). */
export type StateConfig = { engine: "sqlite"; path: string } | { engine: "postgres"; url: string; password?: string; poolSize: number };

/** The configuration with every default filled in and paths resolved. */
export interface PackagerConfig {
  host: string;
  port: number;
  secret: string;
  dataDir: string;
  storeDirectory: string;
  tempDirectory: string;
  queuePath: string;
  state: StateConfig;
  cacheTime: number;
  pageSize: number;
  slowRequest: number;
  workers: { fast: number; slow: number };
  workerMemoryMb: number;
  visibilityTimeoutMs: number;
  maxAttempts: number;
  jobs: { fast?: Record<string, unknown>; slow?: Record<string, unknown>; deadLetters?: Record<string, unknown>[]; create: boolean };
  sources: Record<string, Record<string, unknown>>;
  /** Where relative paths of source nodes resolve: the working directory at start. */
  configDir: string;
  allowHosts: string[];
  allowPrivate: boolean;
  requestTimeoutMs: number;
  maxDownloadBytes: number;
  publicUrl: string;
  linkExpiry: number;
  email: z.output<typeof emailSchema>;
  dwc: { idField: string; dynamicTerm: string; extensionFields: Record<string, { extension: "multimedia"; fields: Record<string, string> }> };
  logLevel: "debug" | "info" | "warn" | "error";
}

export const DEFAULT_EMAIL_BODY = `Hello,

The link to the resource you requested on {ckan_host} is available at:
{link}

It stays valid until {expires}.

Best Wishes,
The Data Portal Bot
`;

const DEFAULT_EXTENSION_FIELDS = {
  associatedMedia: {
    extension: "multimedia" as const,
    fields: {
      type: "StillImage",
      format: "image/jpeg",
      identifier: "",
      title: "",
      license: "http://creativecommons.org/licenses/by/4.0/",
      rightsHolder: "",
    },
  },
};

/** snake_case keys to camelCase, recursively, except inside maps whose keys are data (extension field names). */
function camelKeys(value: unknown, path: string[] = []): unknown {
  if (Array.isArray(value)) return value.map((v) => camelKeys(v, path));
  if (value === null || typeof value !== "object") return value;
  const dataKeys = path.at(-1) === "extensionFields" || path.at(-1) === "fields";
  // Channel nodes are spelled as a broker config spells them (snake_case); the runtime converts them itself.
  if (path[0] === "jobs" && path.length >= 2) return value;
  // Source names are data, and source nodes are spelled as a broker config spells them.
  if (path[0] === "sources" && path.length >= 1) return value;
  const out: Record<string, unknown> = {};
  for (const [k, v] of Object.entries(value)) {
    const key = dataKeys ? k : k.replace(/_([a-z0-9])/g, (_, c: string) => c.toUpperCase());
    out[key] = camelKeys(v, [...path, key]);
  }
  return out;
}

/** Reads a YAML or JSON config file (snake_case keys). */
export function readConfigFile(path: string): PackagerConfigInput {
  const text = readFileSync(path, "utf8");
  const raw: unknown = path.endsWith(".json") ? JSON.parse(text) : parseYaml(text);
  return camelKeys(raw ?? {}) as PackagerConfigInput;
}

function resolveState(s: z.output<typeof stateSchema> | undefined, dataDir: string, env: NodeJS.ProcessEnv): StateConfig {
  const url = s?.url ?? env.GEOWATCH_PACKAGER_PG_URL;
  const engine = s?.engine ?? (url ? "postgres" : "sqlite");
  if (engine === "sqlite") return { engine, path: resolve(s?.path ?? join(dataDir, "stats.db")) };
  if (!url) {
    throw new GeoWatchError("CONFIG", "state.engine is postgres but no state.url (or GEOWATCH_PACKAGER_PG_URL) names the database", { backend: "packager", path: "state.url" });
  }
  if (!/^postgres(?:ql)?:\/\//.test(url)) {
    // The value is not echoed: it may hold a password.
    throw new GeoWatchError("CONFIG", "state.url must be a postgres:// or postgresql:// URL", { backend: "packager", path: "state.url" });
  }
  const passwordFile = s?.passwordFile ?? env.GEOWATCH_PACKAGER_PG_PASSWORD_FILE;
  let password = s?.password ?? env.GEOWATCH_PACKAGER_PG_PASSWORD;
  if (password === undefined && passwordFile) {
    try {
      password = readFileSync(passwordFile, "utf8").split("\n")[0]!.trim();
    } catch (err) {
      throw new GeoWatchError("CONFIG", `cannot read state.password_file ${passwordFile}: ${(err as Error).message}`, { backend: "packager", path: "state.password_file", cause: err });
    }
  }
  return { engine, url, ...(password !== undefined ? { password } : {}), poolSize: s?.poolSize ?? 4 };
}

/** Validates (every problem at once, with paths) and fills defaults; env fallbacks from `env`. */
export function resolveConfig(input: PackagerConfigInput, env: NodeJS.ProcessEnv = process.env): PackagerConfig {
  const o = parseOptions(packagerConfigSchema, input, "packager config", "packager");
  const secretFile = o.secretFile ?? env.GEOWATCH_PACKAGER_SECRET_FILE;
  const secret = o.secret ?? env.GEOWATCH_PACKAGER_SECRET ?? (secretFile ? readFileSync(secretFile, "utf8").trim() : undefined);
  if (!secret) {
    throw new GeoWatchError("CONFIG", "no shared secret: set secret, secret_file, GEOWATCH_PACKAGER_SECRET or GEOWATCH_PACKAGER_SECRET_FILE", { backend: "packager", path: "secret" });
  }
  const dataDir = resolve(o.dataDir ?? "./packager-data");
  const host = o.host ?? env.GEOWATCH_PACKAGER_HOST ?? "127.0.0.1";
  const port = o.port ?? (env.GEOWATCH_PACKAGER_PORT ? Number(env.GEOWATCH_PACKAGER_PORT) : 8765);
  return {
    host,
    port,
    secret,
    dataDir,
    storeDirectory: resolve(o.storeDirectory ?? join(dataDir, "store")),
    tempDirectory: resolve(o.tempDirectory ?? join(dataDir, "tmp")),
    queuePath: resolve(o.queuePath ?? join(dataDir, "jobs.db")),
    state: resolveState(o.state, dataDir, env),
    cacheTime: o.cacheTime ?? 86400,
    pageSize: o.pageSize ?? 5000,
    slowRequest: o.slowRequest ?? 50000,
    workers: { fast: o.workers?.fast ?? 1, slow: o.workers?.slow ?? 1 },
    workerMemoryMb: o.workerMemoryMb ?? 128,
    visibilityTimeoutMs: o.visibilityTimeoutMs ?? 30000,
    maxAttempts: o.maxAttempts ?? 5,
    jobs: { ...(o.jobs?.fast ? { fast: o.jobs.fast } : {}), ...(o.jobs?.slow ? { slow: o.jobs.slow } : {}), ...(o.jobs?.deadLetters ? { deadLetters: o.jobs.deadLetters } : {}), create: o.jobs?.create ?? true },
    sources: o.sources ?? {},
    configDir: process.cwd(),
    allowHosts: o.allowHosts ?? [],
    allowPrivate: o.allowPrivate ?? false,
    requestTimeoutMs: o.requestTimeoutMs ?? 60000,
    maxDownloadBytes: o.maxDownloadBytes ?? 10 * 1024 ** 3,
    publicUrl: (o.publicUrl ?? `http://${host.includes(":") ? `[${host}]` : host}:${port}`).replace(/\/+$/, ""),
    linkExpiry: o.linkExpiry ?? 7 * 86400,
    email: o.email ?? {},
    dwc: {
      idField: o.dwc?.idField ?? "_id",
      dynamicTerm: o.dwc?.dynamicTerm ?? "dynamicProperties",
      extensionFields: o.dwc?.extensionFields ?? DEFAULT_EXTENSION_FIELDS,
    },
    logLevel: o.logLevel ?? "info",
  };
}
