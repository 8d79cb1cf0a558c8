import { isUtf8 } from "node:buffer";
import { GetObjectCommand } from "@aws-sdk/client-s3";
import { GeoWatchError, backoffMs, getCodec, isGeoWatchError, reasonOf, sleep } from "@geowatch/core";
import type { DeadLetter, Logger, Message, Metadata, Payload, Stage, StageOutput } from "@geowatch/core";
import { codeOf, describe, s3Link, statusOf } from "./client.js";
import type { S3Link } from "./client.js";
import { parseOptions, s3FetchSchema } from "./options.js";
import type { S3FetchOptions } from "./options.js";

/** One object an S3 event notification names. */
export interface S3EventObject {
  bucket: string;
  key: string;
  eTag?: string;
  size?: number;
  eventName: string;
}

/**
 * The created objects an S3 event notification (as S3 delivers it to SQS, SNS or EventBridge-less
 * targets) names; `undefined` when the value is not one. `s3:TestEvent` and non-create events give [].
 * Keys arrive URL-encoded with `+` for spaces; they are decoded here.
 */
export function s3EventObjects(value: unknown): S3EventObject[] | undefined {
  let v = value;
  if (typeof v === "string") {
    try {
      v = JSON.parse(v) as unknown;
    } catch {
      return undefined;
    }
  }
  if (v === null || typeof v !== "object") return undefined;
  const o = v as { Event?: unknown; Records?: unknown; Message?: unknown };
  if (o.Event === "s3:TestEvent") return [];
  // Through SNS without raw delivery, the notification is the envelope's Message.
  if (!Array.isArray(o.Records) && typeof o.Message === "string") return s3EventObjects(o.Message);
  if (!Array.isArray(o.Records)) return undefined;
  const out: S3EventObject[] = [];
  for (const r of o.Records as Array<Record<string, unknown>>) {
    const eventName = typeof r?.eventName === "string" ? r.eventName : "";
    const s3 = r?.s3 as { bucket?: { name?: unknown }; object?: { key?: unknown; eTag?: unknown; size?: unknown } } | undefined;
    if (!eventName.startsWith("ObjectCreated:")) continue;
    if (typeof s3?.bucket?.name !== "string" || typeof s3.object?.key !== "string") return undefined;
    const obj: S3EventObject = { bucket: s3.bucket.name, key: decodeURIComponent(s3.object.key.replace(/\+/g, " ")), eventName };
    if (typeof s3.object.eTag === "string") obj.eTag = s3.object.eTag;
    if (typeof s3.object.size === "number") obj.size = s3.object.size;
    out.push(obj);
  }
  return out;
}

/**
 * The `s3_fetch` stage: the S3 event notification -> SQS pattern. A message that is an S3 event
 * notification (from an SQS or SNS consumer) becomes the contents of the objects it names, decoded with
 * `codec`; the notification is acknowledged (an SQS message deleted) only once those are delivered.
 */
export function s3Fetch(options: S3FetchOptions, ctx: { logger?: Logger } = {}): Stage {
  const opts = parseOptions<S3FetchOptions>(s3FetchSchema, options, "s3_fetch stage");
  const codec = getCodec(opts.codec ?? "json");
  const split = opts.split ?? "object";
  const retryForMs = opts.retryForMs ?? 300_000;
  const log = ctx.logger;
  // The link needs a bucket only for its health probe; events name their own.
  let link: S3Link | undefined;
  const s3 = (bucket: string): S3Link => (link ??= s3Link({ ...opts, bucket: opts.bucket ?? bucket }));

  async function get(o: S3EventObject): Promise<Uint8Array | undefined> {
    const started = Date.now();
    for (let attempt = 1; ; attempt++) {
      try {
        const res = await s3(o.bucket).send(`get "${o.bucket}/${o.key}"`, (c) => c.send(new GetObjectCommand({ Bucket: o.bucket, Key: o.key })));
        return await res.Body!.transformToByteArray();
      } catch (err) {
        if (codeOf(err) === "NoSuchKey" || statusOf(err) === 404) return undefined;
        if (!isGeoWatchError(err, "CONNECT") || Date.now() - started > retryForMs) throw describe(err, `read of "${o.bucket}/${o.key}"`);
        log?.warn("s3 endpoint unreachable; retrying the fetch", { backend: "s3", key: o.key, attempt, error: reasonOf(err) });
        await sleep(backoffMs(attempt, 200, 5000));
      }
    }
  }

  function values(body: Uint8Array): unknown[] {
    const text: Payload = isUtf8(body) ? Buffer.from(body).toString("utf8") : body;
    if (split === "unpack") {
      if (!codec.unpack) throw new GeoWatchError("CONFIG", `codec "${codec.name}" cannot unpack; use split: lines or object`, { backend: "s3" });
      return codec.unpack(text);
    }
    if (split === "object") return [codec.decode(text)];
    return (typeof text === "string" ? text : Buffer.from(text).toString("utf8"))
      .split("\n")
      .map((l) => l.replace(/\r$/, ""))
      .filter((l) => l.trim() !== "")
      .map((l) => codec.decode(l));
  }

  async function one(m: Message, pass: Message[], dead: DeadLetter[]): Promise<void> {
    const objects = s3EventObjects(m.value);
    if (objects === undefined) {
      dead.push({ message: m, reason: "not an S3 event notification (no Records with s3.bucket.name and s3.object.key)" });
      return;
    }
    for (const o of objects) {
      if (opts.bucket !== undefined && o.bucket !== opts.bucket) {
        dead.push({ message: m, reason: `event of bucket "${o.bucket}", this stage reads "${opts.bucket}"` });
        return;
      }
    }
    const out: Message[] = [];
    for (const o of objects) {
      const body = await get(o);
      if (body === undefined) {
        // Deleted (or replaced by a delete) since the event: there is nothing left to deliver.
        log?.info("object named by an S3 event no longer exists", { backend: "s3", bucket: o.bucket, key: o.key });
        continue;
      }
      let vals: unknown[];
      try {
        vals = values(body);
      } catch (err) {
        dead.push({ message: m, reason: `object "${o.bucket}/${o.key}": ${reasonOf(err)}` });
        return;
      }
      for (const value of vals) {
        const metadata: Metadata | undefined = codec.metadataOf?.(value);
        const msg: Message = { value, key: o.key, headers: { ...m.headers, "s3-bucket": o.bucket, "s3-key": o.key, ...(o.eTag ? { "s3-etag": o.eTag } : {}) } };
        if (metadata) msg.metadata = metadata;
        if (m.source !== undefined) msg.source = m.source;
        if (m.position) msg.position = m.position;
        if (m.timestamp !== undefined) msg.timestamp = m.timestamp;
        out.push(msg);
      }
    }
    pass.push(...out);
  }

  return {
    name: "s3_fetch",
    async process(batch: Message[]): Promise<StageOutput> {
      const pass: Message[] = [];
      const dead: DeadLetter[] = [];
      for (const m of batch) await one(m, pass, dead);
      return { pass, dead };
    },
    async close() {
      link?.close();
      link = undefined;
    },
  };
}
