import { randomBytes } from "node:crypto";
import { DeleteObjectsCommand, GetObjectCommand, ListObjectsV2Command, PutObjectCommand } from "@aws-sdk/client-s3";
import { Upload } from "@aws-sdk/lib-storage";
import { GeoWatchError, payloadBytes } from "@geowatch/core";
import type { Payload, Store, StoreWrite } from "@geowatch/core";
import { codeOf, describe, s3Link, statusOf } from "./client.js";
import type { S3Link } from "./client.js";
import { checkStore, parseOptions, s3StoreSchema } from "./options.js";
import type { S3StoreOptions } from "./options.js";

/** An S3 store: the `Store` contract plus listing by prefix. */
export interface S3Store extends Store {
  connect(): Promise<void>;
  read(key: string): Promise<Payload | undefined>;
  close(): Promise<void>;
  /** Object keys (without the store's `prefix`) that start with `prefix`, in key order. */
  list(prefix: string): Promise<string[]>;
}

/** What a read saw of a key, so the rewrite that follows it can be conditional. */
interface Seen {
  etag: string | undefined;
  parts: string[];
  at: number;
}

/** A read that no write followed within this long is forgotten (its rewrite never came). */
const SEEN_TTL_MS = 120_000;
/**
 * Longest a read holds its key for the rewrite that follows it. When none comes (a plain read), the hold lapses;
 * correctness never depends on it (the conditional write does), it only spares this process's own flushes of
 * one key from failing each other's conditional writes.
 */
const HOLD_MS = 2000;
const RESERVED = ".geowatch/";
const LONE_SURROGATE = /[\uD800-\uDBFF](?![\uDC00-\uDFFF])|(?<![\uD800-\uDBFF])[\uDC00-\uDFFF]/;

/**
 * One object per key, plus one new object per appended flush (`partKey`): appends never rewrite what
 * another writer wrote. A rewrite after a read (the core merging a non-appendable codec's body) is
 * conditional on the ETag that read saw, so two writers cannot overwrite each other's merge.
 */
export function s3Store(options: S3StoreOptions): S3Store {
  const opts = parseOptions<S3StoreOptions>(s3StoreSchema, options, "s3 store", checkStore);
  const prefix = opts.prefix ?? "";
  const partKey = opts.partKey ?? "{key}.parts/{seq}";
  const multipartBytes = opts.multipartBytes ?? 8 * 1024 * 1024;
  const conditional = opts.conditionalWrites ?? true;
  const writer = randomBytes(4).toString("hex");
  let link: S3Link | undefined;
  let lastMs = 0;
  let counter = 0;
  const seen = new Map<string, Seen[]>();
  /** Per key: the end of the queue of reads holding it, and the release of the read now holding it. */
  const queues = new Map<string, Promise<void>>();
  const holders = new Map<string, () => void>();

  /**
   * A read-then-rewrite in this process holds the key until its write (or HOLD_MS), so this process's own
   * flushes of one key merge one after another instead of failing each other's conditional writes.
   */
  async function hold(full: string): Promise<() => void> {
    const before = queues.get(full) ?? Promise.resolve();
    let free!: () => void;
    const mine = new Promise<void>((r) => (free = r));
    const tail = before.then(() => mine);
    queues.set(full, tail);
    await before;
    let released = false;
    const release = (): void => {
      if (released) return;
      released = true;
      clearTimeout(timer);
      if (holders.get(full) === release) holders.delete(full);
      if (queues.get(full) === tail) queues.delete(full);
      free();
    };
    const timer = setTimeout(release, HOLD_MS);
    timer.unref();
    holders.set(full, release);
    return release;
  }

  const s3 = (): S3Link => (link ??= s3Link(opts));

  function objectKey(key: string): string {
    if (key === "" || key.includes("\0")) throw new GeoWatchError("VALIDATE", `key "${key}" is empty or holds a NUL byte`, { backend: "s3", path: key });
    const full = prefix + key;
    if (full.startsWith(RESERVED)) throw new GeoWatchError("VALIDATE", `key "${full}" is under ${RESERVED}, which holds checkpoints`, { backend: "s3", path: key });
    if (Buffer.byteLength(full) > 1024) throw new GeoWatchError("VALIDATE", `key "${full.slice(0, 60)}..." is longer than S3's 1024 bytes`, { backend: "s3", path: key });
    return full;
  }

  /** Unique and ordered within a writer: epoch ms (never going back), a counter, the writer's id. */
  function nextSeq(): string {
    const now = Math.max(Date.now(), lastMs);
    counter = now === lastMs ? counter + 1 : 0;
    lastMs = now;
    return `${String(now).padStart(14, "0")}-${String(counter).padStart(6, "0")}-${writer}`;
  }

  const [partHead, partTail] = ((): [string, string] => {
    const i = partKey.indexOf("{seq}");
    return [partKey.slice(0, i), partKey.slice(i + 5)];
  })();
  const partsPrefix = (full: string): string => partHead.replace("{key}", full);

  async function listKeys(p: string): Promise<string[]> {
    const out: string[] = [];
    let token: string | undefined;
    do {
      const page = await s3().send(`list "${p}"`, (c) => c.send(new ListObjectsV2Command({ Bucket: opts.bucket, Prefix: p, ContinuationToken: token })));
      for (const o of page.Contents ?? []) if (o.Key !== undefined) out.push(o.Key);
      token = page.IsTruncated ? page.NextContinuationToken : undefined;
    } while (token);
    return out.sort();
  }

  async function listParts(full: string): Promise<string[]> {
    const head = partsPrefix(full);
    return (await listKeys(head)).filter((k) => k.endsWith(partTail) && !k.slice(head.length, k.length - partTail.length).includes("/"));
  }

  /** The object's bytes and ETag, or undefined when absent. */
  async function get(key: string): Promise<{ body: Uint8Array; etag: string | undefined } | undefined> {
    try {
      const res = await s3().send(`get "${key}"`, (c) => c.send(new GetObjectCommand({ Bucket: opts.bucket, Key: key })));
      return { body: await res.Body!.transformToByteArray(), etag: res.ETag };
    } catch (err) {
      if (codeOf(err) === "NoSuchKey" || statusOf(err) === 404) return undefined;
      throw describe(err, `read of "${key}"`);
    }
  }

  async function put(key: string, body: Uint8Array, contentType: string, cond: { IfMatch?: string; IfNoneMatch?: string }): Promise<void> {
    const params = { Bucket: opts.bucket, Key: key, Body: body, ContentType: contentType, ...cond };
    try {
      if (body.byteLength >= multipartBytes) {
        await s3().send(`multipart upload of "${key}"`, (c) => new Upload({ client: c, params, partSize: multipartBytes, queueSize: 4, leavePartsOnError: false }).done());
      } else {
        await s3().send(`put "${key}"`, (c) => c.send(new PutObjectCommand(params)));
      }
    } catch (err) {
      const code = codeOf(err);
      if (statusOf(err) === 412 || code === "PreconditionFailed" || code === "ConditionalRequestConflict" || (cond.IfMatch && (code === "NoSuchKey" || statusOf(err) === 404))) {
        throw new GeoWatchError("STORE", `"${key}" changed since it was read (another writer); read again and retry`, { backend: "s3", cause: err, retryable: true });
      }
      throw describe(err, `write of "${key}"`);
    }
  }

  async function remove(keys: string[]): Promise<void> {
    for (let i = 0; i < keys.length; i += 1000) {
      const chunk = keys.slice(i, i + 1000);
      const res = await s3().send(`delete parts`, (c) => c.send(new DeleteObjectsCommand({ Bucket: opts.bucket, Delete: { Objects: chunk.map((Key) => ({ Key })), Quiet: true } })));
      const failed = res.Errors ?? [];
      if (failed.length > 0) throw new GeoWatchError("STORE", `could not delete ${failed.length} replaced part(s), first "${failed[0]!.Key}": ${failed[0]!.Message}`, { backend: "s3", retryable: true });
    }
  }

  /** The most recent read of a key still waiting for its rewrite. */
  function takeSeen(full: string): Seen | undefined {
    const list = seen.get(full);
    if (!list) return undefined;
    const now = Date.now();
    const fresh = list.filter((s) => now - s.at < SEEN_TTL_MS);
    const last = fresh.pop();
    if (fresh.length > 0) seen.set(full, fresh);
    else seen.delete(full);
    return last;
  }

  return {
    capabilities: { append: true, read: true },
    async connect() {
      await s3().check();
    },
    async write(op: StoreWrite): Promise<void> {
      const full = objectKey(op.key);
      if (typeof op.body === "string" && LONE_SURROGATE.test(op.body)) {
        throw new GeoWatchError("ENCODE", `body of key "${op.key}" is not valid Unicode text (a lone surrogate)`, { backend: "s3", path: op.key });
      }
      const body = payloadBytes(op.body);
      if (op.append) return put(partKey.replace("{key}", full).replace("{seq}", nextSeq()), body, op.contentType, { IfNoneMatch: "*" });
      const before = takeSeen(full);
      const release = before ? holders.get(full) : undefined;
      try {
        const cond = !conditional || !before ? {} : before.etag ? { IfMatch: before.etag } : { IfNoneMatch: "*" };
        // Parts the read merged into this body (or, for a plain replace, all there are now) go once it is written;
        // parts written after that stay, as appends that came later.
        const parts = before ? before.parts : await listParts(full);
        await put(full, body, op.contentType, cond);
        if (parts.length > 0) await remove(parts);
      } finally {
        release?.();
      }
    },
    async read(key: string): Promise<Payload | undefined> {
      const full = objectKey(key);
      const release = conditional ? await hold(full) : undefined;
      try {
        const [base, parts] = await Promise.all([get(full), listParts(full)]);
        const bodies: Uint8Array[] = base ? [base.body] : [];
        const got = parts.length > 0 ? await Promise.all(parts.map((k) => get(k))) : [];
        // A part deleted between the listing and the get was merged by a concurrent rewrite, which is in `base` or newer.
        for (const g of got) if (g) bodies.push(g.body);
        // Bounded: reads that no rewrite follows (stores_in polling) must not pile up.
        const now = Date.now();
        const list = (seen.get(full) ?? []).filter((x) => now - x.at < SEEN_TTL_MS).slice(-15);
        list.push({ etag: base?.etag, parts, at: now });
        seen.set(full, list);
        if (bodies.length === 0) return undefined;
        return bodies.length === 1 ? bodies[0]! : new Uint8Array(Buffer.concat(bodies));
      } catch (err) {
        release?.();
        throw err;
      }
    },
    async list(p: string): Promise<string[]> {
      return (await listKeys(prefix + p)).map((k) => k.slice(prefix.length));
    },
    health() {
      return link ? link.health() : { ok: true };
    },
    async close() {
      link?.close();
      link = undefined;
      seen.clear();
      for (const release of [...holders.values()]) release();
    },
  };
}
