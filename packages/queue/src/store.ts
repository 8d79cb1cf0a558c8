import { DatabaseSync } from "node:sqlite";
import type { StatementSync } from "node:sqlite";
import { resolve } from "node:path";
import { GeoWatchError } from "@geowatch/core";
import { resolvePath } from "./options.js";

/** A reference to the process-wide connection for one database file. */
export interface QueueDatabase {
  /** The absolute path of the database file. */
  readonly path: string;
  /** The shared connection. Do not close it; call `release`. */
  readonly db: DatabaseSync;
  /** Drops this reference; the connection closes with the last one. Idempotent. */
  release(): void;
}

/** Counts for one queue. */
export interface QueueStats {
  /** Visible now (including expired leases waiting for redelivery). */
  ready: number;
  /** Leased to a consumer whose lease is still live. */
  inFlight: number;
  /** Sent with a delay or requeued with a retry delay, not visible yet. */
  delayed: number;
  /** Messages in `<queue>.dead`. */
  dead: number;
}

/** A row as `claim` returns it. */
export interface ClaimedRow {
  id: number;
  body: Uint8Array | string | null;
  key: string | null;
  headers: string | null;
  enqueued_at: number;
  receive_count: number;
  reason: string | null;
}

export interface NewRow {
  queue: string;
  body: Uint8Array | string;
  key: string | null;
  headers: string | null;
  visibleAt: number;
}

export interface Lease {
  id: number;
  lease: string;
}

const BUSY_TIMEOUT_MS = 5000;

// AUTOINCREMENT so an id is never reused after its row is deleted: ids stay unique handles and dedupe keys.
const SCHEMA = `
CREATE TABLE IF NOT EXISTS queue_messages (
  id INTEGER PRIMARY KEY AUTOINCREMENT,
  queue TEXT NOT NULL,
  body BLOB,
  key TEXT,
  headers TEXT,
  enqueued_at INTEGER NOT NULL,
  visible_at INTEGER NOT NULL,
  receive_count INTEGER NOT NULL DEFAULT 0,
  lease_token TEXT,
  reason TEXT
);
CREATE INDEX IF NOT EXISTS queue_messages_ready ON queue_messages (queue, visible_at, id);
`;

const SQL = {
  insert: `INSERT INTO queue_messages (queue, body, key, headers, enqueued_at, visible_at)
           VALUES (:queue, :body, :key, :headers, :now, :visibleAt) RETURNING id`,
  candidates: `SELECT id, receive_count FROM queue_messages
               WHERE queue = :queue AND visible_at <= :now ORDER BY visible_at, id LIMIT :max`,
  claim: `UPDATE queue_messages SET visible_at = :until, receive_count = receive_count + 1, lease_token = :lease
          WHERE id IN (SELECT value FROM json_each(:ids))
          RETURNING id, body, key, headers, enqueued_at, receive_count, reason`,
  expire: `UPDATE queue_messages SET queue = queue || '.dead', visible_at = :now, receive_count = 0, lease_token = NULL,
             reason = 'visibility timeout expired after ' || receive_count || ' deliveries'
           WHERE id IN (SELECT value FROM json_each(:ids))`,
  ack: `DELETE FROM queue_messages WHERE id = :id AND lease_token = :lease`,
  requeue: `UPDATE queue_messages SET visible_at = :at, lease_token = NULL, reason = :reason
            WHERE id = :id AND lease_token = :lease AND receive_count < :max`,
  bury: `UPDATE queue_messages SET queue = queue || '.dead', visible_at = :now, receive_count = 0, lease_token = NULL,
           reason = :reason
         WHERE id = :id AND lease_token = :lease`,
  giveBack: `UPDATE queue_messages SET visible_at = :now, lease_token = NULL WHERE id = :id AND lease_token = :lease`,
  // One statement for any number of leases (:leases is a JSON array of [id, lease] pairs); RETURNING
  // names the ids whose lease still matched. `keep` never moves a lease earlier (an explicit longer extend wins).
  extend: `UPDATE queue_messages SET visible_at = :until
           FROM (SELECT value ->> 0 AS id, value ->> 1 AS lease FROM json_each(:leases)) AS l
           WHERE queue_messages.id = l.id AND queue_messages.lease_token = l.lease
           RETURNING queue_messages.id AS id`,
  keep: `UPDATE queue_messages SET visible_at = max(visible_at, :until)
         FROM (SELECT value ->> 0 AS id, value ->> 1 AS lease FROM json_each(:leases)) AS l
         WHERE queue_messages.id = l.id AND queue_messages.lease_token = l.lease
         RETURNING queue_messages.id AS id`,
  stats: `SELECT
            coalesce(sum(queue = :queue AND visible_at <= :now), 0) AS ready,
            coalesce(sum(queue = :queue AND visible_at > :now AND lease_token IS NOT NULL), 0) AS inFlight,
            coalesce(sum(queue = :queue AND visible_at > :now AND lease_token IS NULL), 0) AS delayed,
            coalesce(sum(queue = :dead), 0) AS dead
          FROM queue_messages WHERE queue IN (:queue, :dead)`,
} as const;

type Waiter = () => void;

/** The per-path state every producer and consumer of one file in this process shares. */
export class QueueStore {
  private readonly stmts = new Map<string, StatementSync>();
  private readonly waiters = new Map<string, Set<Waiter>>();
  refs = 0;
  readonly path: string;
  readonly db: DatabaseSync;

  // Plain fields, not parameter properties: the test fixtures run this file with Node's type stripping.
  constructor(path: string, db: DatabaseSync) {
    this.path = path;
    this.db = db;
  }

  private stmt(sql: string): StatementSync {
    let s = this.stmts.get(sql);
    if (!s) {
      s = this.db.prepare(sql);
      this.stmts.set(sql, s);
    }
    return s;
  }

  /** Runs `fn` in one write transaction; nothing awaits inside, so the shared connection stays consistent. */
  private tx<T>(what: string, fn: () => T): T {
    try {
      this.db.exec("BEGIN IMMEDIATE");
    } catch (err) {
      throw sqliteError(what, err);
    }
    try {
      const out = fn();
      this.db.exec("COMMIT");
      return out;
    } catch (err) {
      try {
        this.db.exec("ROLLBACK");
      } catch {
        // Already rolled back by SQLite (e.g. after SQLITE_FULL); the original error is what matters.
      }
      throw sqliteError(what, err);
    }
  }

  insert(rows: NewRow[], now: number): number[] {
    const ins = this.stmt(SQL.insert);
    return this.tx("send", () =>
      rows.map((r) => {
        const row = ins.get({ queue: r.queue, body: r.body, key: r.key, headers: r.headers, now, visibleAt: r.visibleAt });
        return Number((row as { id: number }).id);
      }),
    );
  }

  /**
   * Leases up to `max` visible messages in FIFO order. Messages already delivered `maxReceives`
   * times move to `<queue>.dead` instead, and the claim continues past them.
   */
  claim(queue: string, max: number, now: number, until: number, lease: string, maxReceives: number | undefined): ClaimedRow[] {
    const candidates = this.stmt(SQL.candidates);
    const claim = this.stmt(SQL.claim);
    const expire = this.stmt(SQL.expire);
    return this.tx("receive", () => {
      const out: ClaimedRow[] = [];
      for (;;) {
        const rows = candidates.all({ queue, now, max: max - out.length }) as Array<{ id: number; receive_count: number }>;
        if (rows.length === 0) break;
        const live: number[] = [];
        const dead: number[] = [];
        for (const r of rows) (maxReceives !== undefined && r.receive_count >= maxReceives ? dead : live).push(r.id);
        if (live.length > 0) {
          const order = new Map(live.map((id, i) => [id, i]));
          const got = claim.all({ ids: JSON.stringify(live), until, lease }) as unknown as ClaimedRow[];
          got.sort((a, b) => (order.get(a.id) ?? 0) - (order.get(b.id) ?? 0));
          out.push(...got);
        }
        if (dead.length === 0 || out.length >= max) break;
        expire.run({ ids: JSON.stringify(dead), now });
      }
      return out;
    });
  }

  ack(leases: Lease[]): number {
    const del = this.stmt(SQL.ack);
    return this.tx("ack", () => leases.reduce((n, l) => n + Number(del.run({ ...l }).changes), 0));
  }

  /** Requeues (visible at `at`) or buries; a requeue past `maxReceives` buries. Stale leases are ignored. */
  nack(leases: Lease[], requeue: boolean, at: number, now: number, reason: string, maxReceives: number | undefined): void {
    const back = this.stmt(SQL.requeue);
    const bury = this.stmt(SQL.bury);
    const max = maxReceives ?? Number.MAX_SAFE_INTEGER;
    this.tx("nack", () => {
      for (const l of leases) {
        if (requeue && Number(back.run({ ...l, at, reason, max }).changes) > 0) continue;
        const why = requeue ? `${reason} (maxReceives ${max} reached)` : reason;
        bury.run({ ...l, now, reason: why });
      }
    });
  }

  /** Makes leased messages visible now, as a closing consumer hands back what it never finished. */
  giveBack(leases: Lease[], now: number): number {
    const back = this.stmt(SQL.giveBack);
    return this.tx("close", () => leases.reduce((n, l) => n + Number(back.run({ ...l, now }).changes), 0));
  }

  /**
   * Sets the leases' visibility to `until` in one statement (`keep`: only ever later); returns the ids
   * whose lease still matched, the others were lost (expired and claimed again, acked, or nacked).
   */
  extend(leases: Lease[], until: number, keep = false): number[] {
    const ext = this.stmt(keep ? SQL.keep : SQL.extend);
    const pairs = JSON.stringify(leases.map((l) => [l.id, l.lease]));
    return this.tx("extend", () => (ext.all({ leases: pairs, until }) as Array<{ id: number }>).map((r) => Number(r.id)));
  }

  stats(queue: string, now: number): QueueStats {
    try {
      const row = this.stmt(SQL.stats).get({ queue, dead: `${queue}.dead`, now }) as Record<keyof QueueStats, number>;
      return { ready: Number(row.ready), inFlight: Number(row.inFlight), delayed: Number(row.delayed), dead: Number(row.dead) };
    } catch (err) {
      throw sqliteError("stats", err);
    }
  }

  /** Resolves when `notify(queue)` runs in this process, or `stop` is called. */
  waitFor(queue: string): { promise: Promise<void>; stop: () => void } {
    let set = this.waiters.get(queue);
    if (!set) this.waiters.set(queue, (set = new Set()));
    const waiters = set;
    let done: () => void = () => {};
    const promise = new Promise<void>((r) => (done = r));
    const stop = (): void => {
      waiters.delete(stop);
      done();
    };
    waiters.add(stop);
    return { promise, stop };
  }

  notify(queue: string): void {
    for (const w of [...(this.waiters.get(queue) ?? [])]) w();
  }
}

const stores = new Map<string, QueueStore>();

function keyOf(path: string): string {
  return path === ":memory:" ? path : resolve(path);
}

/** Takes a reference to the shared store of `path`, opening the database (and creating the schema) on first use. */
export function acquireStore(path: string): QueueStore {
  const key = keyOf(path);
  let store = stores.get(key);
  if (!store) {
    let db: DatabaseSync | undefined;
    try {
      db = new DatabaseSync(key);
      // busy_timeout first: switching to WAL and creating the schema may wait on another process.
      db.exec(`PRAGMA busy_timeout = ${BUSY_TIMEOUT_MS}`);
      db.exec("PRAGMA journal_mode = WAL");
      // FULL: a send or ack that returned survives power loss, not only a process crash.
      db.exec("PRAGMA synchronous = FULL");
      db.exec(SCHEMA);
    } catch (err) {
      try {
        db?.close();
      } catch {
        // Closing a half-opened connection can fail too; the open error is the one to report.
      }
      throw new GeoWatchError("CONNECT", `cannot open queue database "${key}": ${(err as Error).message}`, {
        backend: "queue",
        cause: err,
        retryable: isBusy(err),
      });
    }
    store = new QueueStore(key, db);
    stores.set(key, store);
  }
  store.refs++;
  return store;
}

/** Drops a reference taken with `acquireStore`; the last one closes the connection. */
export function releaseStore(store: QueueStore): void {
  store.refs--;
  if (store.refs > 0 || stores.get(store.path) !== store) return;
  stores.delete(store.path);
  store.db.close();
}

/**
 * Opens the queue database at `path` (default `GEOWATCH_QUEUE_PATH`, then `./geowatch.db`): WAL mode,
 * a busy timeout and the schema. Every caller in this process shares one connection per path.
 */
export function openQueueDatabase(path?: string): QueueDatabase {
  const store = acquireStore(resolvePath(path));
  let released = false;
  return {
    path: store.path,
    db: store.db,
    release() {
      if (released) return;
      released = true;
      releaseStore(store);
    },
  };
}

/** Counts of `queue` in the database at `path`: ready, in flight, delayed and dead. */
export function queueStats(path: string | undefined, queue: string): QueueStats {
  const store = acquireStore(resolvePath(path));
  try {
    return store.stats(queue, Date.now());
  } finally {
    releaseStore(store);
  }
}

function isBusy(err: unknown): boolean {
  const e = err as { errcode?: number; message?: string };
  // SQLITE_BUSY (5) and SQLITE_LOCKED (6), including extended codes.
  return ((e.errcode ?? 0) & 0xff) === 5 || ((e.errcode ?? 0) & 0xff) === 6 || /database is locked/.test(e.message ?? "");
}

function sqliteError(what: string, err: unknown): GeoWatchError {
  if (err instanceof GeoWatchError) return err;
  const busy = isBusy(err);
  return new GeoWatchError(busy ? "TIMEOUT" : "STORE", `${what} failed: ${(err as Error).message}`, {
    backend: "queue",
    cause: err,
    retryable: busy,
  });
}
