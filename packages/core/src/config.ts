import { z } from "zod";
import { GeoWatchError } from "./errors.js";

/** One problem in a config, with where it is. */
export interface ConfigIssue {
  path: string;
  message: string;
}

/** A config with problems: the message lists every one with its path. */
export class ConfigError extends GeoWatchError {
  readonly issues: ConfigIssue[];
  constructor(issues: ConfigIssue[], source = "config") {
    super("CONFIG", `${source} has ${issues.length} problem(s):\n${issues.map((i) => `  - ${i.path || "(root)"}: ${i.message}`).join("\n")}`);
    this.issues = issues;
  }
}

const seconds = z.number().nonnegative();
const codecRef = z.union([z.string().min(1), z.object({ name: z.string().min(1), options: z.record(z.string(), z.unknown()).optional() }).strict()]);
const topicCheck = z.union([z.boolean(), z.object({ create: z.boolean().optional(), partitions: z.number().int().positive().optional() }).strict()]);

/** Keys a channel node understands itself; every other key is an option of its backend. */
export const NODE_KEYS = [
  "enabled", "name", "backend", "codec", "topic", "topics", "topic_prefix", "count", "max_tries", "timeout", "topic_check",
  "max_batch", "max_batch_bytes", "linger_ms", "options",
] as const;
/** Keys a store node understands itself. */
export const STORE_KEYS = ["enabled", "name", "backend", "codec", "key", "which", "which_index", "mode", "flush_count", "flush_ms", "poll_ms", "max_tries", "options"] as const;

export const nodeSchema = z
  .object({
    enabled: z.boolean().optional().describe("Provision this node (default true)."),
    name: z.string().min(1).optional().describe("Node name in logs and metrics (default backend + index)."),
    backend: z.string().min(1).describe("Backend name (kafka, file, queue, memory, ...) or an npm package name."),
    codec: codecRef.optional().describe("Codec name, or {name, options}."),
    topic: z.string().min(1).optional(),
    topics: z.array(z.string().min(1)).optional(),
    topic_prefix: z.string().optional(),
    count: z.number().int().positive().optional().describe("Records per receive for this consumer."),
    max_tries: z.number().int().positive().optional().describe("Connect and send attempts."),
    timeout: seconds.optional().describe("Send timeout in seconds."),
    topic_check: topicCheck.optional().describe("Check the topic exists at start; {create: true} creates it."),
    max_batch: z.number().int().positive().optional().describe("Producer: most records per send."),
    max_batch_bytes: z.number().int().positive().optional().describe("Producer: most bytes per send."),
    linger_ms: z.number().int().nonnegative().optional().describe("Producer: collect records this long to send them together."),
    options: z.record(z.string(), z.unknown()).optional().describe("Backend options (may also be given inline)."),
  })
  .catchall(z.unknown());

export const storeSchema = z
  .object({
    enabled: z.boolean().optional(),
    name: z.string().min(1).optional(),
    backend: z.string().min(1),
    codec: codecRef.optional(),
    key: z.string().min(1).describe("Store key; placeholders like {featuretype} come from message metadata."),
    which: z.enum(["first", "last", "all", "index"]).optional(),
    which_index: z.number().int().optional(),
    mode: z.enum(["append", "snapshot"]).optional(),
    flush_count: z.number().int().positive().optional(),
    flush_ms: z.number().int().nonnegative().optional(),
    poll_ms: z.number().int().positive().optional().describe("stores_in: read again this often (ms); default once."),
    max_tries: z.number().int().positive().optional(),
    options: z.record(z.string(), z.unknown()).optional(),
  })
  .catchall(z.unknown());

export const stageSchema = z.object({ stage: z.string().min(1), enabled: z.boolean().optional(), name: z.string().optional() }).catchall(z.unknown());

export const brokerSchema = z
  .object({
    name: z.string().min(1),
    enabled: z.boolean().optional(),
    description: z.string().optional(),
    count: z.number().int().positive().optional().describe("Records per receive, per consumer (default 100)."),
    sleep_period: seconds.optional().describe("Seconds to sleep when a cycle received nothing (default 1)."),
    timeout: seconds.optional().describe("Send timeout in seconds (default 30)."),
    max_tries: z.number().int().positive().optional().describe("Send attempts before dead-lettering (default 5)."),
    max_in_flight: z.number().int().positive().optional(),
    deduplicate: z.union([z.boolean(), z.enum(["key", "content"])]).optional(),
    dedup_window: z.number().int().positive().optional(),
    filter_metadata: z.record(z.string(), z.array(z.unknown())).optional(),
    filter_last_one: z.boolean().optional(),
    consumers: z.array(nodeSchema).optional(),
    producers: z.array(nodeSchema).optional(),
    stores_in: z.array(storeSchema).optional(),
    stores_out: z.array(storeSchema).optional(),
    dead_letter: nodeSchema.optional(),
    stages: z.array(stageSchema).optional(),
  })
  .strict();

/** A broker's own fields; its node lists are checked node by node, so one bad node hides nothing else. */
export const brokerFieldsSchema = brokerSchema.extend({
  consumers: z.array(z.unknown()).optional(),
  producers: z.array(z.unknown()).optional(),
  stores_in: z.array(z.unknown()).optional(),
  stores_out: z.array(z.unknown()).optional(),
  dead_letter: z.unknown().optional(),
  stages: z.array(z.unknown()).optional(),
});

export const configSchema = z
  .object({
    $schema: z.string().optional(),
    defaults: z.record(z.string(), z.record(z.string(), z.unknown())).optional().describe("Per-backend option fallbacks; a node's own value always wins."),
    brokers: z.array(brokerSchema).min(1),
  })
  .strict();

export type NodeConfig = z.infer<typeof nodeSchema>;
export type StoreConfig = z.infer<typeof storeSchema>;
export type StageConfig = z.infer<typeof stageSchema>;
export type BrokerConfig = z.infer<typeof brokerSchema>;
export type GeoWatchConfig = z.infer<typeof configSchema>;

/** `a.b[2].c` from a zod path. */
export function formatPath(path: ReadonlyArray<PropertyKey>, prefix = ""): string {
  let out = prefix;
  for (const p of path) out += typeof p === "number" ? `[${p}]` : out === "" ? String(p) : `.${String(p)}`;
  return out;
}

/** A zod issue's message, with "required" for a missing value instead of zod's "expected X, received undefined". */
export function issueMessage(issue: { code: string; message: string }): string {
  return issue.code === "invalid_type" && / received undefined$/.test(issue.message) ? "required" : issue.message;
}

/** Converts zod issues to config issues with paths; an unknown key is reported on its own path with the known ones. */
export function zodIssues(error: z.ZodError, prefix = ""): ConfigIssue[] {
  return error.issues.flatMap((i) => {
    if (i.code === "unrecognized_keys") {
      const known = i.path.length === 0 ? KNOWN_KEYS.get(prefix === "" ? "top" : /^brokers\[\d+\]$/.test(prefix) ? "broker" : "") : undefined;
      return i.keys.map((k) => ({ path: formatPath([...i.path, k], prefix), message: `unknown key${known ? ` (known: ${known})` : ""}` }));
    }
    return [{ path: formatPath(i.path, prefix), message: issueMessage(i) }];
  });
}

const KNOWN_KEYS = new Map([
  ["top", "$schema, defaults, brokers"],
  ["broker", Object.keys(brokerSchema.shape).join(", ")],
]);

type BackendLike = { name: string; consumer?: { jsonSchema(): Record<string, unknown> }; producer?: { jsonSchema(): Record<string, unknown> }; store?: { jsonSchema(): Record<string, unknown> } };
type StageLike = { name: string; description?: string; jsonSchema(): Record<string, unknown> };

/**
 * The config schema as JSON Schema, for editors; with the options of the given backends (per role, picked
 * by `backend`) and stages (picked by `stage`), property names as config spells them.
 */
export function configJsonSchema(installed: { backends?: BackendLike[]; stages?: StageLike[] } = {}): Record<string, unknown> {
  const js = z.toJSONSchema(configSchema, { target: "draft-2020-12", unrepresentable: "any" }) as Record<string, unknown>;
  const broker = ((js.properties as Record<string, Record<string, unknown>>).brokers!.items ?? {}) as Record<string, unknown>;
  const props = broker.properties as Record<string, Record<string, unknown>>;
  const byBackend = (role: "consumer" | "producer" | "store") =>
    (installed.backends ?? []).flatMap((b) => {
      const r = b[role];
      if (!r) return [];
      const options = r.jsonSchema();
      return [{ if: { properties: { backend: { const: b.name } }, required: ["backend"] }, then: { properties: options.properties ?? {}, ...(options.required ? { required: options.required } : {}) } }];
    });
  const withOptions = (node: Record<string, unknown> | undefined, role: "consumer" | "producer" | "store") => {
    const rules = byBackend(role);
    return node && rules.length > 0 ? { ...node, allOf: rules } : node;
  };
  const arr = (k: string, role: "consumer" | "producer" | "store") => {
    const p = props[k];
    if (p?.items) props[k] = { ...p, items: withOptions(p.items as Record<string, unknown>, role) };
  };
  arr("consumers", "consumer");
  arr("producers", "producer");
  arr("stores_in", "store");
  arr("stores_out", "store");
  if (props.dead_letter) props.dead_letter = withOptions(props.dead_letter, "producer")!;
  const stages = installed.stages ?? [];
  if (props.stages?.items && stages.length > 0) {
    const item = props.stages.items as Record<string, unknown>;
    props.stages = {
      ...props.stages,
      items: {
        ...item,
        allOf: stages.map((s) => {
          const options = s.jsonSchema();
          return { if: { properties: { stage: { const: s.name } }, required: ["stage"] }, then: { properties: options.properties ?? {}, ...(options.required ? { required: options.required } : {}) } };
        }),
      },
    };
  }
  return js;
}

const ENV_REF = /\$\{([A-Za-z_][A-Za-z0-9_]*)(?::-([^}]*))?\}/g;
const FILE_REF = /^\$\{file:([^}]+)\}$/;

/** Keys that would reach or replace an object's prototype; a config may not use them anywhere. */
export const FORBIDDEN_CONFIG_KEYS: ReadonlySet<string> = new Set(["__proto__", "constructor", "prototype"]);

function forbiddenKeyIssue(path: string, key: string): ConfigIssue {
  return { path, message: `key "${key}" is not allowed (it names an object prototype member; a config holds own data only)` };
}

const childPath = (path: string, key: string): string => (path ? `${path}.${key}` : key);

/**
 * Reports every `__proto__`, `constructor` or `prototype` key in `value`, at any depth, as an issue
 * with its path, in document order. Iterative, and each object is visited once, so deep, shared
 * (aliased) and cyclic values terminate. Returns the number of issues it added.
 */
export function checkForbiddenKeys(value: unknown, issues: ConfigIssue[], path = ""): number {
  const before = issues.length;
  const seen = new Set<object>();
  // A string third element marks a forbidden key to report when its turn comes.
  const todo: Array<[unknown, string, string?]> = [[value, path]];
  while (todo.length > 0) {
    const [v, at, forbidden] = todo.pop()!;
    if (forbidden !== undefined) {
      issues.push(forbiddenKeyIssue(at, forbidden));
      continue;
    }
    if (v === null || typeof v !== "object" || seen.has(v)) continue;
    seen.add(v);
    if (Array.isArray(v)) {
      for (let i = v.length - 1; i >= 0; i--) todo.push([v[i], `${at}[${i}]`]);
      continue;
    }
    const keys = Object.keys(v);
    for (let i = keys.length - 1; i >= 0; i--) {
      const k = keys[i]!;
      todo.push(FORBIDDEN_CONFIG_KEYS.has(k) ? [undefined, childPath(at, k), k] : [(v as Record<string, unknown>)[k], childPath(at, k)]);
    }
  }
  return issues.length - before;
}

/**
 * Replaces `${NAME}` (or `${NAME:-default}`) in every string with the environment variable, and a whole
 * string `${file:/path}` with the file's trimmed content. Missing variables are config issues.
 * Only own enumerable keys are copied, each as an own data property; a forbidden key (see
 * `FORBIDDEN_CONFIG_KEYS`) is reported with its path and left out, so the result never has a
 * replaced prototype.
 */
export function interpolate(
  value: unknown,
  env: Record<string, string | undefined>,
  readFile: (path: string) => string,
  issues: ConfigIssue[],
  path = "",
): unknown {
  if (typeof value === "string") {
    const file = FILE_REF.exec(value);
    if (file) {
      try {
        return readFile(file[1]!).trim();
      } catch (err) {
        issues.push({ path, message: `cannot read secret file "${file[1]}": ${(err as Error).message}` });
        return value;
      }
    }
    if (!value.includes("${")) return value;
    return value.replace(ENV_REF, (whole, name: string, fallback: string | undefined) => {
      const v = Object.hasOwn(env, name) ? env[name] : undefined;
      if (v !== undefined && v !== "") return v;
      if (fallback !== undefined) return fallback;
      issues.push({ path, message: `environment variable ${name} is not set` });
      return whole;
    });
  }
  if (Array.isArray(value)) return value.map((v, i) => interpolate(v, env, readFile, issues, `${path}[${i}]`));
  if (value !== null && typeof value === "object") {
    const out: Record<string, unknown> = {};
    for (const k of Object.keys(value)) {
      const at = childPath(path, k);
      if (FORBIDDEN_CONFIG_KEYS.has(k)) {
        issues.push(forbiddenKeyIssue(at, k));
        continue;
      }
      // defineProperty, not assignment: assignment to "__proto__" would call the prototype setter.
      Object.defineProperty(out, k, {
        value: interpolate((value as Record<string, unknown>)[k], env, readFile, issues, at),
        enumerable: true,
        writable: true,
        configurable: true,
      });
    }
    return out;
  }
  return value;
}
