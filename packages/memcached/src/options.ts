/** Options of the memcached store and the tilerequest codec: one zod schema each gives validation, types, docs and JSON Schema. */
import { GeoWatchError, optionProblems } from "@geowatch/core";
import { z } from "zod";

const nonEmpty = z.string().min(1, "must be a non-empty string");
const server = nonEmpty.regex(/^[^\s:,]+(:\d{1,5})?$/, "must be host or host:port");
/** memcached reads an expiry above 30 days as a unix time; the store converts longer TTLs itself. */
const seconds = z.number().int().nonnegative().max(10 * 365 * 86400, "must be at most 10 years (in seconds)");

export const memcachedStoreSchema = z.strictObject({
  servers: z
    .union([z.array(server).min(1, "must list at least one server"), nonEmpty])
    .optional()
    .meta({ env: "GEOWATCH_MEMCACHED_SERVERS" })
    .describe("Servers, `host:port` (a list or a comma-separated string; port 11211 when omitted). Keys are spread over them by hash. Required here or from the env fallback."),
  keyPrefix: z.string().optional().meta({ default: "" }).describe("Prepended to every key (`tiles:` + `osm/3/4/2.png`); `ttls` patterns match the key without it."),
  ttl: seconds.optional().meta({ default: 0 }).describe("Seconds a written key lives (0: until evicted). Counted from the last write: an append refreshes it."),
  ttls: z
    .array(
      z.strictObject({
        key: nonEmpty.describe("Pattern in the key template's shape: `{name}` matches one path segment (no `/`), `*` anything."),
        ttl: seconds.describe("Seconds a key matching `key` lives (0: until evicted)."),
      }),
    )
    .optional()
    .describe("TTL per key pattern, first match wins; keys matching none get `ttl`. Example: `[{ key: \"tile/osm/{z}/*\", ttl: 600 }]`."),
  maxValueBytes: z
    .number()
    .int()
    .positive()
    .optional()
    .meta({ default: "the server's item_size_max less the item header and key" })
    .describe("Largest value written. A larger value (or an append that would grow a key past the server's limit) fails with a STORE error naming the key and both sizes, and the broker dead-letters its messages; nothing is split."),
  timeoutMs: z.number().int().positive().optional().meta({ default: 1000 }).describe("Milliseconds to wait for a reply (and for a connection) before the server counts as unreachable."),
  healthIntervalMs: z.number().int().min(100).optional().meta({ default: 1000 }).describe("How often an idle store asks every server for its version, so `/ready` turns 503 while one is down even without traffic."),
  casRetries: z.number().int().min(1).max(100).optional().meta({ default: 10 }).describe("Append races (append to a missing key while another writer creates it) re-tried this often within one write before it fails as retryable."),
});

/** Options of `memcachedStore`. */
export type MemcachedStoreOptions = z.input<typeof memcachedStoreSchema>;

export const tilerequestCodecSchema = z.strictObject({
  ttl: z
    .number()
    .int()
    .positive()
    .optional()
    .describe("Seconds a tile request stays current after its date (the original's TTL). When set, decoded requests carry `expires` (ISO date) and `expired` (true once `date + ttl` has passed) in their metadata, so `filter_metadata: { expired: [false] }` drops stale ones, and unpacking a store body keeps only requests that have not expired."),
  maxZoom: z.number().int().min(0).max(30).optional().meta({ default: 30 }).describe("Highest zoom level accepted; a line with a higher `z` is a DECODE error."),
});

/** Options of `tilerequestCodec`. */
export type TilerequestCodecOptions = z.input<typeof tilerequestCodecSchema>;

/** Parses options or throws one CONFIG error listing every problem with its path. */
export function parseOptions<T>(schema: z.ZodType<T>, options: unknown, what: string): T {
  const res = schema.safeParse(options);
  if (res.success) return res.data;
  const problems = optionProblems(schema, options);
  throw new GeoWatchError("CONFIG", `invalid ${what} options: ${problems.map((p) => `${p.path}: ${p.message}`).join("; ")}`, {
    backend: "memcached",
    path: problems[0]?.path,
  });
}

/** The store's servers from options or GEOWATCH_MEMCACHED_SERVERS, as `host:port` strings. */
export function serversOf(options: Pick<MemcachedStoreOptions, "servers">, env: NodeJS.ProcessEnv = process.env): string[] {
  const raw = options.servers ?? env.GEOWATCH_MEMCACHED_SERVERS;
  const list = (Array.isArray(raw) ? raw : (raw ?? "").split(","))
    .map((s) => s.trim())
    .filter((s) => s !== "")
    .map((s) => (s.includes(":") ? s : `${s}:11211`));
  if (list.length === 0) throw new GeoWatchError("CONFIG", "no servers: set `servers` or env GEOWATCH_MEMCACHED_SERVERS", { backend: "memcached", path: "servers" });
  const bad = list.find((s) => !/^[^\s:,]+:\d{1,5}$/.test(s) || Number(s.split(":")[1]) > 65535);
  if (bad) throw new GeoWatchError("CONFIG", `server "${bad}" is not host:port`, { backend: "memcached", path: "servers" });
  return list;
}
