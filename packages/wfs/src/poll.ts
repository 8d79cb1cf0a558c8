/**
 * The reader as a consumer. Without `poll` it reads the layer once, page by page. With `poll` it reads
 * again every `interval_ms` and emits only new or changed features, in a stable order, and checkpoints on
 * commit (acknowledged = checkpointed, in node:sqlite): by `timestamp`, the last acknowledged value of the
 * field and the ids acknowledged at that value (so features sharing a timestamp are neither lost nor
 * repeated); by `id`, a content hash per acknowledged id. A restart re-emits what was not acknowledged.
 * A failed read is logged, reported by `health()` and retried; it never ends the stream.
 */
import { createHash } from "node:crypto";
import { mkdirSync } from "node:fs";
import { dirname, resolve } from "node:path";
import { DatabaseSync } from "node:sqlite";
import { GeoWatchError, guardConsumer, parseOptions, reasonOf, silentLogger, waitForWake } from "@geowatch/core";
import type { BackendHealth, Consumer, InRecord, Logger, ManagedConsumer, Position, ReceiveOptions } from "@geowatch/core";
import { compareValues } from "./filter.js";
import type { FilterExpr } from "./filter.js";
import type { Feature } from "./gml-common.js";
import { BACKEND } from "./http.js";
import type { SecretReader } from "./http.js";
import { layerReader, readAll } from "./reader.js";
import type { FeaturePage } from "./reader.js";
import { wfsConsumerSchema } from "./reader-options.js";
import type { WfsReaderOptions } from "./reader-options.js";

/** The timestamp mode's position: the last acknowledged value and the ids acknowledged at it. */
interface Mark {
  value: string | number;
  ids: string[];
}

interface Emitted {
  id: string;
  /** Timestamp mode: the field's value; id mode: the content hash ("" for a delete). */
  value: string | number;
  /** Id mode with `deletes`: the id left the layer (or the selection). */
  deleted?: boolean;
}

/** The checkpoint file: one row for the mark, one per acknowledged id (id mode). */
class Checkpoint {
  private readonly db: DatabaseSync;

  constructor(path: string) {
    mkdirSync(dirname(path), { recursive: true });
    this.db = new DatabaseSync(path);
    this.db.exec("PRAGMA journal_mode=WAL; PRAGMA synchronous=FULL; CREATE TABLE IF NOT EXISTS mark (k TEXT PRIMARY KEY, v TEXT NOT NULL); CREATE TABLE IF NOT EXISTS seen (id TEXT PRIMARY KEY, hash TEXT NOT NULL);");
  }

  mark(): Mark | undefined {
    const row = this.db.prepare("SELECT v FROM mark WHERE k = 'mark'").get() as { v: string } | undefined;
    return row ? (JSON.parse(row.v) as Mark) : undefined;
  }

  hashes(): Map<string, string> {
    const rows = this.db.prepare("SELECT id, hash FROM seen").all() as Array<{ id: string; hash: string }>;
    return new Map(rows.map((r) => [r.id, r.hash]));
  }

  /** One transaction: the mark and the acknowledged hashes together. */
  save(mark: Mark | undefined, hashes: Emitted[]): void {
    this.db.exec("BEGIN IMMEDIATE");
    try {
      if (mark) this.db.prepare("INSERT INTO mark (k, v) VALUES ('mark', ?) ON CONFLICT (k) DO UPDATE SET v = excluded.v").run(JSON.stringify(mark));
      const put = this.db.prepare("INSERT INTO seen (id, hash) VALUES (?, ?) ON CONFLICT (id) DO UPDATE SET hash = excluded.hash");
      const drop = this.db.prepare("DELETE FROM seen WHERE id = ?");
      for (const h of hashes) {
        if (h.deleted) drop.run(h.id);
        else put.run(h.id, String(h.value));
      }
      this.db.exec("COMMIT");
    } catch (err) {
      this.db.exec("ROLLBACK");
      throw err;
    }
  }

  close(): void {
    if (this.db.isOpen) this.db.close();
  }
}

const idOf = (f: Feature): string | undefined => (f.id === undefined || f.id === null ? undefined : String(f.id));
const hashOf = (f: Feature): string => createHash("sha256").update(JSON.stringify([f.geometry, f.properties])).digest("base64url");

/** The raw consumer; the backend definition hands it to the runtime, which owns connect/close. */
export function createWfsConsumer(options: WfsReaderOptions, ctx: { logger?: Logger; secret?: SecretReader; name?: string } = {}): Consumer {
  const o = parseOptions<WfsReaderOptions>(wfsConsumerSchema, options, "wfs consumer", BACKEND);
  const log = ctx.logger ?? silentLogger;
  const reader = layerReader(o, ctx.secret);
  const poll = o.poll;
  const by = poll?.by ?? "timestamp";
  const intervalMs = poll?.intervalMs ?? 30_000;
  const stream = `wfs:${o.typeName}`;
  const checkpoint = poll ? resolve(poll.checkpoint) : undefined;

  let cp: Checkpoint | undefined;
  let mark: Mark | undefined;
  let hashes = new Map<string, string>();
  const buffer: InRecord[] = [];
  /** Emitted and not yet committed, by sequence number. */
  const pending = new Map<number, Emitted>();
  let seq = 0;
  let nextReadAt = 0;
  let failures = 0;
  let lastError: string | undefined;
  let reads = 0;
  /** Once-mode: the page iterator of the one read, and whether it ended. */
  let once: AsyncGenerator<FeaturePage> | undefined;
  /** Polling: at most this many features per poll, and whether the last poll left some for the next. */
  const cap = o.maxFeatures ?? Infinity;
  let more = false;
  let onceDone = false;
  /** Features the one read has handed out: a read resumed after a failure starts there. */
  let onceRead = 0;
  let closed = false;
  let lock: Promise<unknown> = Promise.resolve();
  const wakers = new Set<() => void>();

  function record(f: Feature, actiontype: string | undefined, emitted: Emitted | undefined): InRecord {
    const n = seq++;
    if (emitted) pending.set(n, emitted);
    const value = o.envelope ? { metadata: { featuretype: o.typeName, ...(actiontype ? { actiontype } : {}) }, data: f } : f;
    const rec: InRecord = { value: JSON.stringify(value), position: { stream, offset: n, next: n + 1 }, timestamp: Date.now() };
    const id = idOf(f);
    if (id !== undefined) rec.key = id;
    return rec;
  }

  /** Timestamp mode: features at or after the mark, minus those acknowledged at it, oldest first. */
  function sinceMark(features: Feature[], field: string): void {
    const atMark = new Set(mark?.ids ?? []);
    let missing = 0;
    const out: Array<{ f: Feature; v: string | number; id: string }> = [];
    for (const f of features) {
      const v = f.properties?.[field];
      const id = idOf(f) ?? hashOf(f);
      if (typeof v !== "string" && typeof v !== "number") {
        missing++;
        continue;
      }
      if (mark && (compareValues(v, mark.value) < 0 || (compareValues(v, mark.value) === 0 && atMark.has(id)))) continue;
      out.push({ f, v, id });
    }
    if (missing > 0) log.warn("features without a usable poll field were skipped", { backend: BACKEND, field, count: missing, typeName: o.typeName });
    out.sort((a, b) => compareValues(a.v, b.v) || (a.id < b.id ? -1 : a.id > b.id ? 1 : 0));
    // The oldest `max_features`: the mark moves only over what was emitted, so the rest come next poll.
    more = out.length > cap;
    for (const x of out.slice(0, cap)) buffer.push(record(x.f, undefined, { id: x.id, value: x.v }));
  }

  /** Id mode: features whose id is new or whose content changed. */
  function changed(features: Feature[]): void {
    let missing = 0;
    const sorted = features.filter((f) => idOf(f) !== undefined || (missing++, false));
    sorted.sort((a, b) => compareValues(idOf(a), idOf(b)));
    let emitted = 0;
    more = false;
    for (const f of sorted) {
      const id = idOf(f)!;
      const h = hashOf(f);
      const before = hashes.get(id);
      if (before === h) continue;
      // Past `max_features` the rest still differ from their acknowledged hash: the next poll has them.
      if (emitted++ >= cap) {
        more = true;
        break;
      }
      buffer.push(record(f, before === undefined ? "create" : "update", { id, value: h }));
    }
    if (poll?.deletes && !more) {
      const present = new Set(sorted.map((f) => idOf(f)!));
      const gone = [...hashes.keys()].filter((id) => !present.has(id)).sort((a, b) => compareValues(a, b));
      for (const id of gone) {
        if (emitted++ >= cap) {
          more = true;
          break;
        }
        // An id of the configured id_field is a number when the layer's values are.
        const fid = o.idField !== undefined && /^-?\d+$/.test(id) && sorted.some((f) => typeof f.id === "number") ? Number(id) : id;
        buffer.push(record({ type: "Feature", id: fid, geometry: null, properties: null }, "delete", { id, value: "", deleted: true }));
      }
    }
    if (missing > 0) log.warn("features without an id were skipped (set id_field)", { backend: BACKEND, count: missing, typeName: o.typeName });
  }

  async function readOnce(): Promise<void> {
    once ??= reader.pages({ start: onceRead });
    const next = await once.next();
    if (next.done) {
      onceDone = true;
      return;
    }
    onceRead += next.value.features.length;
    for (const f of next.value.features) buffer.push(record(f, o.envelope ? "create" : undefined, undefined));
  }

  async function pollOnce(): Promise<void> {
    const field = poll!.field;
    if (by === "timestamp") {
      const pushdown = mark !== undefined && poll!.serverFilter === true && (o.protocol ?? "wfs") === "wfs";
      const and: FilterExpr[] = pushdown && mark ? [{ property: field, gte: mark.value }] : [];
      sinceMark(await readAll(reader, { and, limit: Infinity }), field);
    } else {
      changed(await readAll(reader, { limit: Infinity }));
    }
  }

  async function fill(): Promise<void> {
    if (!poll && !onceDone) {
      await readOnce();
      return;
    }
    // A poll starts once everything emitted is committed, so nothing in flight is emitted twice.
    if (!poll || pending.size > 0 || Date.now() < nextReadAt) return;
    await pollOnce();
  }

  async function step(): Promise<void> {
    try {
      await fill();
      // A poll capped by max_features goes on at once with the rest.
      if (poll) nextReadAt = more ? 0 : Date.now() + intervalMs;
      reads++;
      failures = 0;
      lastError = undefined;
    } catch (err) {
      failures++;
      lastError = reasonOf(err);
      // Polling waits its interval (longer after repeated failures); a one-off read backs off from 1 s.
      const wait = poll ? intervalMs * Math.min(2 ** (failures - 1), 8) : Math.min(1000 * 2 ** (failures - 1), 30_000);
      nextReadAt = Date.now() + wait;
      // Once-mode retries from the page it failed on.
      if (!poll) once = undefined;
      log.warn("read failed; retrying", { backend: BACKEND, typeName: o.typeName, error: lastError, retryInMs: nextReadAt - Date.now(), failures });
    }
  }

  async function receiveLocked(max: number, opts: ReceiveOptions): Promise<InRecord[]> {
    const deadline = Date.now() + opts.waitMs;
    for (;;) {
      if (buffer.length > 0) return buffer.splice(0, Math.max(1, max));
      if (closed || opts.signal?.aborted) return [];
      const due = Date.now() >= nextReadAt;
      const canRead = poll ? due && pending.size === 0 : !onceDone && due;
      if (canRead) {
        await step();
        if (buffer.length > 0) continue;
      }
      const left = deadline - Date.now();
      if (left <= 0) return [];
      // Wake for the next read, or (while a poll waits for commits) to look again soon.
      const wait = !poll && onceDone ? left : Math.min(left, Math.max(50, nextReadAt - Date.now()), pending.size > 0 ? 100 : left);
      await waitForWake(wait, opts.signal, wakers);
    }
  }

  return {
    capabilities: { ordering: "stream", batching: true },
    async connect() {
      if (!checkpoint) return;
      cp = new Checkpoint(checkpoint);
      mark = cp.mark();
      hashes = by === "id" ? cp.hashes() : new Map();
    },
    receive(max: number, opts: ReceiveOptions): Promise<InRecord[]> {
      const run = lock.then(() => receiveLocked(max, opts));
      lock = run.catch(() => undefined);
      return run;
    },
    async commit(positions: Position[]): Promise<void> {
      let next = -1;
      for (const p of positions) if (p.stream === stream) next = Math.max(next, Number(p.next));
      const done: Emitted[] = [];
      for (const [n, e] of pending) if (n < next) done.push(e);
      if (done.length === 0) return;
      if (cp) {
        let newMark = mark;
        if (by === "timestamp") {
          for (const e of done) {
            if (!newMark || compareValues(e.value, newMark.value) > 0) newMark = { value: e.value, ids: [e.id] };
            else if (compareValues(e.value, newMark.value) === 0 && !newMark.ids.includes(e.id)) newMark = { value: newMark.value, ids: [...newMark.ids, e.id] };
          }
        }
        try {
          cp.save(newMark, by === "id" ? done : []);
        } catch (err) {
          throw new GeoWatchError("STORE", `checkpoint "${checkpoint}" could not be written: ${reasonOf(err)}`, { backend: BACKEND, cause: err, retryable: true });
        }
        mark = newMark;
        if (by === "id") {
          for (const e of done) {
            if (e.deleted) hashes.delete(e.id);
            else hashes.set(e.id, String(e.value));
          }
        }
      }
      for (const [n] of pending) if (n < next) pending.delete(n);
      for (const w of wakers) w();
    },
    async caughtUp(): Promise<boolean> {
      if (buffer.length > 0) return false;
      return poll ? reads > 0 && lastError === undefined && !more && pending.size === 0 && Date.now() < nextReadAt : onceDone;
    },
    health(): BackendHealth {
      return lastError === undefined ? { ok: true } : { ok: false, error: lastError };
    },
    async close() {
      closed = true;
      for (const w of wakers) w();
      await once?.return(undefined);
      cp?.close();
    },
  };
}

/**
 * The reader as a consumer, wrapped in core's runtime layer (connect once with retries, refuse calls
 * after close, close once), for use without a config. The backend definition hands the runtime the raw one.
 */
export function wfsConsumer(options: WfsReaderOptions, ctx: { logger?: Logger; secret?: SecretReader; name?: string } = {}): ManagedConsumer {
  return guardConsumer(createWfsConsumer(options, ctx), { name: ctx.name ?? "wfs consumer", backend: BACKEND });
}
