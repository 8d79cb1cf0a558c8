import { isUtf8 } from "node:buffer";
import { GetObjectCommand, ListObjectsV2Command, PutObjectCommand } from "@aws-sdk/client-s3";
import { GeoWatchError, getCodec, payloadText, reasonOf } from "@geowatch/core";
import type { Codec, Consumer, InRecord, Logger, Payload, Position, ReceiveOptions } from "@geowatch/core";
import { codeOf, describe, s3Link, statusOf } from "./client.js";
import type { S3Link } from "./client.js";
import { checkConsumer, parseOptions, s3ConsumerSchema } from "./options.js";
import type { S3ConsumerOptions } from "./options.js";

/**
 * What is acknowledged: every record of every object up to `key`, and of `key` itself the first `line`
 * records (all of them when `done`). `etag` tells whether `key` was replaced since.
 */
interface Checkpoint {
  key: string;
  etag?: string | undefined;
  line: number;
  done: boolean;
}

const RESERVED = ".geowatch/";

const silent: Logger = { debug() {}, info() {}, warn() {}, error() {} };

/**
 * Turns objects under a prefix into records, in key order: one per object, per line, or per value of a
 * codec's unpack. Positions carry (key, line); `commit` writes them to a checkpoint object, so a restart
 * resumes after the last acknowledged record. New objects must sort after the ones already read (time- or
 * sequence-named keys, as the S3 store's `{seq}` parts are): one that sorts before the checkpoint is not seen.
 */
export function s3Consumer(options: S3ConsumerOptions, ctx: { logger?: Logger } = {}): Consumer {
  const opts = parseOptions<S3ConsumerOptions>(s3ConsumerSchema, options, "s3 consumer", checkConsumer);
  const log = ctx.logger ?? silent;
  const prefix = opts.prefix ?? "";
  const groupId = opts.groupId ?? "geowatch";
  const checkpointKey = opts.checkpointKey ?? `${RESERVED}checkpoints/${groupId}/${encodeURIComponent(prefix) || "_all"}.json`;
  const pollMs = opts.pollMs ?? 1000;
  const fetchConcurrency = opts.fetchConcurrency ?? 4;
  const codec: Codec | undefined = opts.unpack ? getCodec(opts.unpack) : undefined;
  const stream = `s3://${opts.bucket}/${prefix}`;

  let link: S3Link | undefined;
  let connected: Promise<void> | undefined;
  let committed: Checkpoint | undefined;
  /** Last key listed and turned into records: the next listing starts after it. */
  let cursor: string | undefined;
  /** An object partly acknowledged before a restart: read it again first, from `line`. */
  let resume: Checkpoint | undefined;
  let buffer: InRecord[] = [];
  let closed = false;
  let turn: Promise<unknown> = Promise.resolve();
  let saving: Promise<unknown> = Promise.resolve();

  const s3 = (): S3Link => (link ??= s3Link(opts));

  /** One caller at a time (receive, commit's save). */
  function serial<T>(fn: () => Promise<T>): Promise<T> {
    const run = turn.then(fn, fn);
    turn = run.catch(() => undefined);
    return run;
  }

  async function loadCheckpoint(): Promise<Checkpoint | undefined> {
    try {
      const res = await s3().send(`checkpoint "${checkpointKey}"`, (c) => c.send(new GetObjectCommand({ Bucket: opts.bucket, Key: checkpointKey })));
      const saved = JSON.parse(await res.Body!.transformToString()) as Partial<Checkpoint>;
      if (typeof saved.key !== "string" || typeof saved.line !== "number") throw new Error("not a checkpoint");
      return { key: saved.key, etag: saved.etag, line: saved.line, done: saved.done === true };
    } catch (err) {
      if (codeOf(err) === "NoSuchKey" || statusOf(err) === 404) return undefined;
      if (err instanceof GeoWatchError) throw err;
      throw new GeoWatchError("CONNECT", `checkpoint "${checkpointKey}" is unreadable: ${reasonOf(err)}`, { backend: "s3", cause: err, retryable: !(err instanceof SyntaxError) });
    }
  }

  async function saveCheckpoint(cp: Checkpoint): Promise<void> {
    const body = JSON.stringify({ ...cp, stream, savedAt: new Date().toISOString() });
    try {
      await s3().send(`checkpoint "${checkpointKey}"`, (c) => c.send(new PutObjectCommand({ Bucket: opts.bucket, Key: checkpointKey, Body: body, ContentType: "application/json" })));
    } catch (err) {
      throw describe(err, `checkpoint "${checkpointKey}"`);
    }
  }

  async function doConnect(): Promise<void> {
    await s3().check();
    committed = await loadCheckpoint();
    if (committed) {
      cursor = committed.key;
      if (!committed.done) resume = committed;
      return;
    }
    if ((opts.startAt ?? "beginning") === "end") {
      let last: string | undefined;
      await listAll((k) => (last = k));
      if (last !== undefined) {
        cursor = last;
        // Pin "end", so a restart before the first commit does not skip what arrived in between.
        committed = { key: last, line: 0, done: true };
        await saveCheckpoint(committed);
      }
    }
  }

  const readable = (key: string): boolean => !key.startsWith(RESERVED) && key !== checkpointKey && !key.endsWith("/");

  async function listPage(startAfter: string | undefined, max: number): Promise<Array<{ key: string; etag?: string | undefined; modified?: Date | undefined }>> {
    const page = await s3().send(`list "${prefix}"`, (c) =>
      c.send(new ListObjectsV2Command({ Bucket: opts.bucket, Prefix: prefix, MaxKeys: max, ...(startAfter !== undefined ? { StartAfter: startAfter } : {}) })),
    );
    return (page.Contents ?? []).flatMap((o) => (o.Key === undefined ? [] : [{ key: o.Key, etag: o.ETag, modified: o.LastModified }]));
  }

  async function listAll(each: (key: string) => void): Promise<void> {
    let after: string | undefined;
    for (;;) {
      const page = await listPage(after, 1000);
      if (page.length === 0) return;
      for (const o of page) if (readable(o.key)) each(o.key);
      after = page[page.length - 1]!.key;
    }
  }

  async function fetch(key: string): Promise<{ body: Uint8Array; etag: string | undefined; modified: number | undefined } | undefined> {
    try {
      const res = await s3().send(`get "${key}"`, (c) => c.send(new GetObjectCommand({ Bucket: opts.bucket, Key: key })));
      return { body: await res.Body!.transformToByteArray(), etag: res.ETag, modified: res.LastModified?.getTime() };
    } catch (err) {
      // Deleted between the listing and the get: nothing to read.
      if (codeOf(err) === "NoSuchKey" || statusOf(err) === 404) return undefined;
      throw describe(err, `read of "${key}"`);
    }
  }

  function text(bytes: Uint8Array): Payload {
    return isUtf8(bytes) ? Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength).toString("utf8") : bytes;
  }

  /** The object's records: whole, per line, or per unpacked value. */
  function split(key: string, body: Uint8Array): Payload[] {
    if (codec) {
      try {
        return codec.unpack ? codec.unpack(text(body)).map((v) => codec.encode(v)) : [body];
      } catch (err) {
        // The node's codec will refuse it too, and the broker dead-letters it with that reason.
        log.warn("object could not be unpacked; passing it on whole", { backend: "s3", key, error: reasonOf(err) });
        return [body];
      }
    }
    if ((opts.split ?? "object") === "object") return [body];
    const out: Payload[] = [];
    let start = 0;
    while (start < body.length) {
      let nl = body.indexOf(10, start);
      if (nl === -1) nl = body.length;
      const end = nl > start && body[nl - 1] === 13 ? nl - 1 : nl;
      const line = body.subarray(start, end);
      if (payloadText(line).trim() !== "") out.push(text(line));
      start = nl + 1;
    }
    return out;
  }

  function records(key: string, got: { body: Uint8Array; etag: string | undefined; modified: number | undefined }, from: number): InRecord[] {
    const values = split(key, got.body);
    const out: InRecord[] = [];
    for (let i = from; i < values.length; i++) {
      const next: Checkpoint = { key, etag: got.etag, line: i + 1, done: i + 1 === values.length };
      const position: Position = { stream, offset: `${key}#${i}`, next: JSON.stringify(next) };
      const r: InRecord = { value: values[i]!, key, position, headers: { "s3-bucket": opts.bucket, "s3-key": key, ...(got.etag ? { "s3-etag": got.etag } : {}) } };
      if (got.modified !== undefined) r.timestamp = got.modified;
      out.push(r);
    }
    return out;
  }

  /** Reads objects until `max` records are buffered or nothing new is listed. */
  async function fill(max: number): Promise<void> {
    if (resume) {
      const r = resume;
      const got = await fetch(r.key);
      // Replaced since the checkpoint: its records are new, read them all.
      const from = got && r.etag !== undefined && got.etag !== r.etag ? 0 : r.line;
      if (got) buffer.push(...records(r.key, got, from));
      resume = undefined;
    }
    while (buffer.length < max) {
      const page = (await listPage(cursor, 1000)).filter((o) => readable(o.key) || ((cursor = o.key), false));
      if (page.length === 0) return;
      for (let i = 0; i < page.length && buffer.length < max; i += fetchConcurrency) {
        const chunk = page.slice(i, i + fetchConcurrency);
        const got = await Promise.all(chunk.map((o) => fetch(o.key)));
        chunk.forEach((o, j) => {
          const g = got[j];
          if (g) buffer.push(...records(o.key, g, 0));
          cursor = o.key;
        });
      }
    }
  }

  function wait(ms: number, signal?: AbortSignal): Promise<void> {
    return new Promise((done) => {
      const finish = (): void => {
        clearTimeout(timer);
        signal?.removeEventListener("abort", finish);
        done();
      };
      const timer = setTimeout(finish, ms);
      signal?.addEventListener("abort", finish, { once: true });
    });
  }

  function connect(): Promise<void> {
    connected ??= doConnect().catch((err: unknown) => {
      connected = undefined;
      throw err;
    });
    return connected;
  }

  const before = (a: Checkpoint, b: Checkpoint): boolean => a.key < b.key || (a.key === b.key && (a.line < b.line || (!a.done && b.done)));

  return {
    capabilities: { ordering: "stream", batching: true },
    connect,
    async receive(max: number, o: ReceiveOptions): Promise<InRecord[]> {
      await connect();
      const deadline = Date.now() + o.waitMs;
      for (;;) {
        if (closed) throw new GeoWatchError("CLOSED", `consumer of "${stream}" is closed`, { backend: "s3" });
        const out = await serial(async () => {
          if (buffer.length < max) await fill(Math.max(1, max));
          return buffer.splice(0, Math.max(1, max));
        });
        const left = deadline - Date.now();
        if (out.length > 0 || left <= 0 || o.signal?.aborted || closed) return out;
        await wait(Math.min(left, pollMs), o.signal);
      }
    },
    async commit(positions: Position[]): Promise<void> {
      let best: Checkpoint | undefined;
      for (const p of positions) {
        if (p.stream !== stream) continue;
        const cp = JSON.parse(String(p.next)) as Checkpoint;
        if (!best || before(best, cp)) best = cp;
      }
      if (!best || (committed && !before(committed, best))) return;
      const cp = best;
      const run = saving.then(async () => {
        if (committed && !before(committed, cp)) return;
        await saveCheckpoint(cp);
        committed = cp;
      });
      saving = run.catch(() => undefined);
      await run;
    },
    async caughtUp() {
      if (buffer.length > 0 || resume !== undefined) return false;
      return serial(async () => (await listPage(cursor, 1000)).every((o) => !readable(o.key)));
    },
    health() {
      return link ? link.health() : { ok: true };
    },
    async close() {
      closed = true;
      await saving;
      buffer = [];
      link?.close();
      link = undefined;
    },
  };
}
