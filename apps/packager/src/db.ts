/** The packager's bookkeeping on node:sqlite: jobs with their progress, the ZIP cache, request and error statistics. */
import { mkdirSync } from "node:fs";
import { dirname } from "node:path";
import { DatabaseSync } from "node:sqlite";

export type JobState = "queued" | "running" | "done" | "failed";

export interface JobRow {
  id: string;
  kind: string;
  queue: string;
  resourceId: string;
  state: JobState;
  rowsDone: number;
  rowsTotal: number | null;
  attempts: number;
  zipName: string | null;
  error: string | null;
  created: number;
  updated: number;
}

export interface Totals {
  emails: number;
  requests: number;
  errors: number;
}

export interface LogEntry {
  email: string;
  resource_id: string;
  timestamp: number;
  message?: string;
}

/** One shared connection per process; WAL so the service and separate worker processes share the file. */
export class PackagerDb {
  readonly db: DatabaseSync;

  constructor(path: string) {
    mkdirSync(dirname(path), { recursive: true });
    this.db = new DatabaseSync(path);
    this.db.exec(`
      PRAGMA journal_mode = WAL;
      PRAGMA synchronous = NORMAL;
      PRAGMA busy_timeout = 10000;
      CREATE TABLE IF NOT EXISTS jobs (
        id TEXT PRIMARY KEY, kind TEXT NOT NULL, queue TEXT NOT NULL, resource_id TEXT NOT NULL, email TEXT NOT NULL,
        state TEXT NOT NULL, rows_done INTEGER NOT NULL DEFAULT 0, rows_total INTEGER, attempts INTEGER NOT NULL DEFAULT 0,
        zip_name TEXT, error TEXT, created REAL NOT NULL, updated REAL NOT NULL);
      CREATE TABLE IF NOT EXISTS cache (key TEXT PRIMARY KEY, zip_name TEXT NOT NULL, created REAL NOT NULL);
      CREATE TABLE IF NOT EXISTS requests (id INTEGER PRIMARY KEY, timestamp REAL NOT NULL, resource_id TEXT NOT NULL, email TEXT NOT NULL);
      CREATE INDEX IF NOT EXISTS requests_resource ON requests (resource_id, timestamp);
      CREATE TABLE IF NOT EXISTS errors (id INTEGER PRIMARY KEY, timestamp REAL NOT NULL, resource_id TEXT NOT NULL, email TEXT NOT NULL, message TEXT NOT NULL);
      CREATE INDEX IF NOT EXISTS errors_resource ON errors (resource_id, timestamp);
      CREATE TABLE IF NOT EXISTS counters (name TEXT PRIMARY KEY, value INTEGER NOT NULL);
      CREATE TABLE IF NOT EXISTS workers (id TEXT PRIMARY KEY, queue TEXT NOT NULL, pid INTEGER NOT NULL, seen REAL NOT NULL);
    `);
  }

  close(): void {
    this.db.close();
  }

  addJob(job: { id: string; kind: string; queue: string; resourceId: string; email: string; rowsTotal: number | null }): void {
    const now = Date.now() / 1000;
    this.db
      .prepare("INSERT INTO jobs (id, kind, queue, resource_id, email, state, rows_total, created, updated) VALUES (?, ?, ?, ?, ?, 'queued', ?, ?, ?)")
      .run(job.id, job.kind, job.queue, job.resourceId, job.email, job.rowsTotal, now, now);
  }

  /** A delivery starts: returns its attempt number (deliveries so far, this one included). The last error stays until it ends. */
  startJob(id: string): number {
    const r = this.db.prepare("UPDATE jobs SET state = 'running', rows_done = 0, attempts = attempts + 1, updated = ? WHERE id = ? RETURNING attempts").get(Date.now() / 1000, id) as
      | { attempts: number }
      | undefined;
    return r ? Number(r.attempts) : 1;
  }

  /** A delivery handed back unstarted (the worker stopped): it does not count as an attempt. */
  unstartJob(id: string): void {
    this.db.prepare("UPDATE jobs SET attempts = max(attempts - 1, 0) WHERE id = ?").run(id);
  }

  progress(id: string, rowsDone: number, rowsTotal: number | null): void {
    this.db.prepare("UPDATE jobs SET rows_done = ?, rows_total = COALESCE(?, rows_total), updated = ? WHERE id = ?").run(rowsDone, rowsTotal, Date.now() / 1000, id);
  }

  finishJob(id: string, zipName: string): void {
    this.db.prepare("UPDATE jobs SET state = 'done', zip_name = ?, error = NULL, updated = ? WHERE id = ?").run(zipName, Date.now() / 1000, id);
    this.bump("processed_requests");
  }

  /** A failed attempt: `final` when it will not be retried. */
  failJob(id: string, error: string, final: boolean): void {
    this.db.prepare("UPDATE jobs SET state = ?, error = ?, updated = ? WHERE id = ?").run(final ? "failed" : "queued", error, Date.now() / 1000, id);
    if (final) this.bump("processed_requests");
  }

  job(id: string): JobRow | undefined {
    const r = this.db.prepare("SELECT * FROM jobs WHERE id = ?").get(id) as Record<string, unknown> | undefined;
    if (!r) return undefined;
    return {
      id: String(r.id),
      kind: String(r.kind),
      queue: String(r.queue),
      resourceId: String(r.resource_id),
      state: r.state as JobState,
      rowsDone: Number(r.rows_done),
      rowsTotal: r.rows_total === null ? null : Number(r.rows_total),
      attempts: Number(r.attempts),
      zipName: r.zip_name === null ? null : String(r.zip_name),
      error: r.error === null ? null : String(r.error),
      created: Number(r.created),
      updated: Number(r.updated),
    };
  }

  /** Jobs not finished, by queue. */
  openJobs(): { queue: string; state: string; n: number }[] {
    return this.db.prepare("SELECT queue, state, count(*) AS n FROM jobs WHERE state IN ('queued', 'running') GROUP BY queue, state").all() as { queue: string; state: string; n: number }[];
  }

  /** A worker says it is alive (every few seconds); `gone` removes it on a clean stop. */
  heartbeat(id: string, queue: string, gone = false): void {
    if (gone) this.db.prepare("DELETE FROM workers WHERE id = ?").run(id);
    else this.db.prepare("INSERT INTO workers (id, queue, pid, seen) VALUES (?, ?, ?, ?) ON CONFLICT (id) DO UPDATE SET seen = excluded.seen").run(id, queue, process.pid, Date.now() / 1000);
  }

  /** Workers seen in the last `withinS` seconds, per queue. */
  liveWorkers(withinS: number): Record<string, number> {
    const rows = this.db.prepare("SELECT queue, count(*) AS n FROM workers WHERE seen >= ? GROUP BY queue").all(Date.now() / 1000 - withinS) as { queue: string; n: number }[];
    return Object.fromEntries(rows.map((r) => [r.queue, Number(r.n)]));
  }

  bump(name: string): void {
    this.db.prepare("INSERT INTO counters (name, value) VALUES (?, 1) ON CONFLICT (name) DO UPDATE SET value = value + 1").run(name);
  }

  counter(name: string): number {
    const r = this.db.prepare("SELECT value FROM counters WHERE name = ?").get(name) as { value: number } | undefined;
    return r ? Number(r.value) : 0;
  }

  cached(key: string, maxAgeS: number): string | undefined {
    const r = this.db.prepare("SELECT zip_name FROM cache WHERE key = ? AND created >= ?").get(key, Date.now() / 1000 - maxAgeS) as { zip_name: string } | undefined;
    return r?.zip_name;
  }

  putCache(key: string, zipName: string): void {
    this.db.prepare("INSERT INTO cache (key, zip_name, created) VALUES (?, ?, ?) ON CONFLICT (key) DO UPDATE SET zip_name = excluded.zip_name, created = excluded.created").run(key, zipName, Date.now() / 1000);
  }

  dropCache(key: string): void {
    this.db.prepare("DELETE FROM cache WHERE key = ?").run(key);
  }

  /** Empties the cache; returns the ZIP names it held. */
  clearCache(): string[] {
    const names = (this.db.prepare("SELECT zip_name FROM cache").all() as { zip_name: string }[]).map((r) => r.zip_name);
    this.db.exec("DELETE FROM cache");
    return names;
  }

  logRequest(resourceId: string, email: string): void {
    this.db.prepare("INSERT INTO requests (timestamp, resource_id, email) VALUES (?, ?, ?)").run(Date.now() / 1000, resourceId, email);
  }

  logError(resourceId: string, email: string, message: string): void {
    this.db.prepare("INSERT INTO errors (timestamp, resource_id, email, message) VALUES (?, ?, ?, ?)").run(Date.now() / 1000, resourceId, email, message);
  }

  /** Per-resource totals with the grand total under "*" (of the filtered resource when one is given). */
  totals(resourceId?: string): Record<string, Totals> {
    const where = resourceId === undefined ? "" : "WHERE resource_id = ?";
    const args = resourceId === undefined ? [] : [resourceId];
    const out: Record<string, Totals> = {};
    const req = this.db.prepare(`SELECT resource_id, count(*) AS requests, count(DISTINCT email) AS emails FROM requests ${where} GROUP BY resource_id`).all(...args) as {
      resource_id: string;
      requests: number;
      emails: number;
    }[];
    for (const r of req) out[r.resource_id] = { emails: Number(r.emails), requests: Number(r.requests), errors: 0 };
    const errs = this.db.prepare(`SELECT resource_id, count(*) AS errors FROM errors ${where} GROUP BY resource_id`).all(...args) as { resource_id: string; errors: number }[];
    for (const e of errs) (out[e.resource_id] ??= { emails: 0, requests: 0, errors: 0 }).errors = Number(e.errors);
    const all = this.db.prepare(`SELECT count(*) AS requests, count(DISTINCT email) AS emails FROM requests ${where}`).get(...args) as { requests: number; emails: number };
    const allErr = this.db.prepare(`SELECT count(*) AS errors FROM errors ${where}`).get(...args) as { errors: number };
    out["*"] = { emails: Number(all.emails), requests: Number(all.requests), errors: Number(allErr.errors) };
    return out;
  }

  entries(table: "requests" | "errors", f: { offset: number; limit: number; resourceId?: string; email?: string }): LogEntry[] {
    const cond: string[] = [];
    const args: (string | number)[] = [];
    if (f.resourceId !== undefined) {
      cond.push("resource_id = ?");
      args.push(f.resourceId);
    }
    if (f.email !== undefined) {
      cond.push("email = ?");
      args.push(f.email);
    }
    const where = cond.length ? `WHERE ${cond.join(" AND ")}` : "";
    const cols = table === "errors" ? "email, resource_id, timestamp, message" : "email, resource_id, timestamp";
    return this.db.prepare(`SELECT ${cols} FROM ${table} ${where} ORDER BY timestamp DESC, id DESC LIMIT ? OFFSET ?`).all(...args, f.limit, f.offset) as unknown as LogEntry[];
  }
}
