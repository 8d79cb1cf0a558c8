/** Options of the S3 backend's roles: one zod schema per role gives validation, types, docs and JSON Schema. */
import { GeoWatchError, codecRegistry, parseOptions as parseWith } from "@geowatch/core";
import type { OptionProblem } from "@geowatch/core";
import { z } from "zod";

/** Options every role shares: where the bucket is and how hard to try. Credentials come from the AWS SDK's default chain. */
const client = {
  bucket: z.string().min(3, "must be a bucket name").describe("Bucket name."),
  region: z.string().min(1).optional().meta({ env: "AWS_REGION" }).describe("AWS region; default from the SDK's chain (`AWS_REGION`, the shared profile). Credentials always come from the SDK's default chain (environment, shared profile, container or instance role), never from config."),
  endpoint: z.url().optional().meta({ env: "AWS_ENDPOINT_URL_S3" }).describe("Endpoint of an S3-compatible server (MinIO, moto, a VPC endpoint); default the AWS endpoint of `region`."),
  forcePathStyle: z.boolean().optional().meta({ default: "true when endpoint is set" }).describe("Address the bucket in the path (`http://host/bucket/key`) instead of the host name."),
  maxAttempts: z.number().int().min(1).max(20).optional().meta({ default: 5 }).describe("Attempts per request: throttling, 5xx and network errors are retried with exponential backoff and full jitter (the SDK's standard retry mode)."),
  connectTimeoutMs: z.number().int().positive().optional().meta({ default: 3000 }).describe("TCP connect timeout in ms; an endpoint that does not answer counts as unreachable (`/ready` answers 503 until it is back)."),
  requestTimeoutMs: z.number().int().positive().optional().meta({ default: 60000 }).describe("Longest wait for a response (socket idle) in ms."),
};

export const s3StoreSchema = z.strictObject({
  ...client,
  prefix: z.string().optional().meta({ default: "" }).describe("Prepended to every store key (`archive/` + `create.ndjson`)."),
  partKey: z.string().optional().meta({ default: "{key}.parts/{seq}" }).describe("Object key of one appended flush: `{key}` is the store key, `{seq}` a unique, time-ordered flush id (`{key}/{seq}.ndjson` gives `create/2026-12-01/<seq>.ndjson` for key `{actiontype}/{date}`). Reading a key returns its object followed by its parts in `{seq}` order."),
  multipartBytes: z.number().int().min(5 * 1024 * 1024).optional().meta({ default: 8 * 1024 * 1024 }).describe("Bodies of at least this many bytes go up as a multipart upload (parts of this size, 4 in parallel)."),
  conditionalWrites: z.boolean().optional().meta({ default: true }).describe("A rewrite that follows a read of the same key (a non-appendable codec in append mode) is sent with If-Match (If-None-Match: * when the key was absent), so a concurrent writer's data is never overwritten: a conflict re-reads and retries. Turn off only for servers without conditional writes."),
});

export const s3ConsumerSchema = z.strictObject({
  ...client,
  prefix: z.string().optional().meta({ default: "" }).describe("Objects whose key starts with this become records, in key order."),
  split: z.enum(["object", "lines"]).optional().meta({ default: "object" }).describe("`object`: one record per object; `lines`: one record per non-empty line (NDJSON, CSV without header)."),
  unpack: z.string().min(1).optional().describe("A codec name (`geojson`, `csv`, `json`, ...): each object is unpacked with that codec and every value becomes one record, encoded again with it (a FeatureCollection gives one record per feature). Exclusive with `split: lines`."),
  groupId: z.string().min(1).regex(/^[\w.-]+$/, "letters, digits, '_', '.', '-' only").optional().meta({ default: "geowatch" }).describe("Names the checkpoint: readers with another group id read the same objects independently."),
  checkpointKey: z.string().min(1).optional().meta({ default: ".geowatch/checkpoints/<group_id>/<prefix>.json" }).describe("Object (in the same bucket) that holds the checkpoint: the last object key (and line) acknowledged. Keys under `.geowatch/` are never read as records."),
  startAt: z.enum(["beginning", "end"]).optional().meta({ default: "beginning" }).describe("Where to start when there is no checkpoint: every object under the prefix, or only objects after the last one there now."),
  pollMs: z.number().int().positive().optional().meta({ default: 1000 }).describe("How often to list the prefix for new objects while idle, in ms."),
  fetchConcurrency: z.number().int().min(1).max(64).optional().meta({ default: 4 }).describe("Objects downloaded in parallel (records keep key order)."),
});

const { bucket: _bucket, ...connection } = client;

export const s3FetchSchema = z.strictObject({
  ...connection,
  bucket: z.string().min(3).optional().describe("Only events of this bucket; an event of another bucket is dead-lettered. Default: any bucket the credentials can read."),
  split: z.enum(["object", "lines", "unpack"]).optional().meta({ default: "object" }).describe("`object`: one message per object (the codec decodes the body); `lines`: one per non-empty line; `unpack`: the codec's unpack (a FeatureCollection gives one message per feature)."),
  codec: z.string().min(1).optional().meta({ default: "json" }).describe("Codec (by name) that decodes the objects' contents: `json`, `geojson`, `csv`, `plain`, ..."),
  retryForMs: z.number().int().positive().optional().meta({ default: 300000 }).describe("How long to keep retrying a fetch while the endpoint is unreachable before the event is dead-lettered, in ms."),
});

/** Options of `s3Store`. */
export type S3StoreOptions = z.input<typeof s3StoreSchema>;
/** Options of `s3Consumer`. */
export type S3ConsumerOptions = z.input<typeof s3ConsumerSchema>;
/** Options of the `s3_fetch` stage. */
export type S3FetchOptions = z.input<typeof s3FetchSchema>;
/** The options every role shares. */
export type S3ClientOptions = Pick<S3StoreOptions, keyof typeof client>;

/** `partKey` needs `{key}` before `{seq}`, and nothing to fill after `{seq}`. */
export function checkStore(o: { partKey?: string | undefined }): OptionProblem[] {
  const t = o.partKey;
  if (t === undefined) return [];
  const k = t.indexOf("{key}");
  const s = t.indexOf("{seq}");
  if (k < 0 || s < 0) return [{ path: "partKey", message: "must contain {key} and {seq}" }];
  if (k > s) return [{ path: "partKey", message: "{key} must come before {seq} (parts are listed by the text before {seq})" }];
  if (t.slice(s + 5).includes("{") || t.slice(0, s).replace("{key}", "").includes("{")) {
    return [{ path: "partKey", message: "only {key} and {seq} are placeholders here (message fields go in the store key)" }];
  }
  return [];
}

export function checkConsumer(o: { split?: string | undefined; unpack?: string | undefined }): OptionProblem[] {
  if (o.split === "lines" && o.unpack !== undefined) return [{ path: "unpack", message: "set either split: lines or unpack, not both" }];
  return checkCodec("unpack", o.unpack);
}

/** A codec named in options must exist (the node's own `codec` is checked by the core). */
export function checkCodec(path: string, name: string | undefined): OptionProblem[] {
  if (name === undefined || Object.hasOwn(codecRegistry, name)) return [];
  return [{ path, message: `unknown codec "${name}" (known: ${Object.keys(codecRegistry).join(", ")})` }];
}

/** Parses options (and the role's own rules) or throws one CONFIG error listing every problem with its path. */
export function parseOptions<T>(schema: z.ZodType, options: unknown, what: string, check?: (o: T) => OptionProblem[]): T {
  const parsed = parseWith(schema as z.ZodType<T>, options, what, "s3");
  const problems = check?.(parsed) ?? [];
  if (problems.length === 0) return parsed;
  const list = problems.map((p) => `${p.path}: ${p.message}`).join("; ");
  throw new GeoWatchError("CONFIG", `invalid ${what} options: ${list}`, { backend: "s3", path: problems[0]!.path });
}
