/**
 * The packager's state: jobs with their progress, the ZIP cache index, request and error statistics, counters and
 * worker heartbeats. One interface, two engines: node:sqlite (the default: `stats.db` under `data_dir`, shared by
 * the processes of one machine) and PostgreSQL (`state: { engine: postgres, url }`: shared by every machine).
 * Both run the same statements (`?` placeholders, numbered for PostgreSQL), so the semantics are the same:
 * attempts counted with UPDATE ... RETURNING, counters incremented in one upsert, a finished job's state and
 * `processed_requests` written in one transaction.
 */
import { mkdirSync } from "node:fs";
import { dirname } from "node:path";
import { DatabaseSync } from "node:sqlite";
import type { SQLInputValue } from "node:sqlite";
import type { StateConfig } from "./config.js";
import { PostgresDriver } from "./pgstate.js";

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

type Param = string | number | null;
interface Stmt {
  sql: string;
  params: Param[];
}

/** What an engine provides: queries with `?` placeholders and an atomic batch of statements. */
export interface SqlDriver {
  readonly engine: "sqlite" | "postgres";
  all<T>(sql: string, params?: Param[]): Promise<T[]>;
  run(sql: string, params?: Param[]): Promise<void>;
  /** Runs the statements in one transaction: all or none. */
  batch(stmts: Stmt[]): Promise<void>;
  close(): Promise<void>;
}

const SQLITE_SCHEMA = `
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
`;

/** node:sqlite, one connection per process (thread); WAL so the service and worker processes share the file. */
class SqliteDriver implements SqlDriver {
  readonly engine = "sqlite" as const;
  private readonly db: DatabaseSync;

  constructor(path: string) {
    mkdirSync(dirname(path), { recursive: true });
    this.db = new DatabaseSync(path);
    this.db.exec(SQLITE_SCHEMA);
  }

  all<T>(sql: string, params: Param[] = []): Promise<T[]> {
    return Promise.resolve(this.db.prepare(sql).all(...(params as SQLInputValue[])) as T[]);
  }

  run(sql: string, params: Param[] = []): Promise<void> {
    this.db.prepare(sql).run(...(params as SQLInputValue[]));
    return Promise.resolve();
  }

  batch(stmts: Stmt[]): Promise<void> {
    // Synchronous from BEGIN to COMMIT: nothing else on this connection can run in between.
    this.db.exec("BEGIN IMMEDIATE");
    try {
      for (const s of stmts) this.db.prepare(s.sql).run(...(s.params as SQLInputValue[]));
      this.db.exec("COMMIT");
    } catch (err) {
      this.db.exec("ROLLBACK");
      throw err;
    }
    return Promise.resolve();
  }

  close(): Promise<void> {
    if (this.db.isOpen) this.db.close();
    return Promise.resolve();
  }
}

/** Every statement here runs on both engines: the same SQL, so the same semantics. */
export class PackagerDb {
  constructor(private readonly sql: SqlDriver) {}

  get engine(): "sqlite" | "postgres" {
    return this.sql.engine;
  }

  /** Connects and creates the schema (PostgreSQL; node:sqlite did at open). Rejects when the database is unreachable. */
  async ready(): Promise<void> {
    await this.sql.all("SELECT 1 AS one");
  }

  close(): Promise<void> {
    return this.sql.close();
  }

  private async get<T>(sql: string, params: Param[]): Promise<T | undefined> {
    return (await this.sql.all<T>(sql, params))[0];
  }

  async addJob(job: { id: string; kind: string; queue: string; resourceId: string; email: string; rowsTotal: number | null }): Promise<void> {
    const now = Date.now() / 1000;
    await this.sql.run("INSERT INTO jobs (id, kind, queue, resource_id, email, state, rows_total, created, updated) VALUES (?, ?, ?, ?, ?, 'queued', ?, ?, ?)", [
      job.id,
      job.kind,
      job.queue,
      job.resourceId,
      job.email,
      job.rowsTotal,
      now,
      now,
    ]);
  }

  /** A delivery starts: returns its attempt number (deliveries so far, this one included). The last error stays until it ends. */
  async startJob(id: string): Promise<number> {
    const r = await this.get<{ attempts: number }>("UPDATE jobs SET state = 'running', rows_done = 0, attempts = attempts + 1, updated = ? WHERE id = ? RETURNING attempts", [Date.now() / 1000, id]);
    return r ? Number(r.attempts) : 1;
  }

  /** A delivery handed back unstarted (the worker stopped): it does not count as an attempt. */
  async unstartJob(id: string): Promise<void> {
    await this.sql.run("UPDATE jobs SET attempts = CASE WHEN attempts > 0 THEN attempts - 1 ELSE 0 END WHERE id = ?", [id]);
  }

  async progress(id: string, rowsDone: number, rowsTotal: number | null): Promise<void> {
    await this.sql.run("UPDATE jobs SET rows_done = ?, rows_total = COALESCE(?, rows_total), updated = ? WHERE id = ?", [rowsDone, rowsTotal, Date.now() / 1000, id]);
  }

  /** The job is done and counted in processed_requests, in one transaction. */
  async finishJob(id: string, zipName: string): Promise<void> {
    await this.sql.batch([{ sql: "UPDATE jobs SET state = 'done', zip_name = ?, error = NULL, updated = ? WHERE id = ?", params: [zipName, Date.now() / 1000, id] }, bumpStmt("processed_requests")]);
  }

  /** A failed attempt: `final` when it will not be retried (then counted in processed_requests, in the same transaction). */
  async failJob(id: string, error: string, final: boolean): Promise<void> {
    const update = { sql: "UPDATE jobs SET state = ?, error = ?, updated = ? WHERE id = ?", params: [final ? "failed" : "queued", error, Date.now() / 1000, id] };
    await this.sql.batch(final ? [update, bumpStmt("processed_requests")] : [update]);
  }

  async job(id: string): Promise<JobRow | undefined> {
    const r = await this.get<Record<string, unknown>>("SELECT * FROM jobs WHERE id = ?", [id]);
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
  async openJobs(): Promise<{ queue: string; state: string; n: number }[]> {
    const rows = await this.sql.all<{ queue: string; state: string; n: number }>("SELECT queue, state, count(*) AS n FROM jobs WHERE state IN ('queued', 'running') GROUP BY queue, state");
    return rows.map((r) => ({ queue: r.queue, state: r.state, n: Number(r.n) }));
  }

  /** A worker says it is alive (every few seconds); `gone` removes it on a clean stop. */
  async heartbeat(id: string, queue: string, gone = false): Promise<void> {
    if (gone) await this.sql.run("DELETE FROM workers WHERE id = ?", [id]);
    else await this.sql.run("INSERT INTO workers (id, queue, pid, seen) VALUES (?, ?, ?, ?) ON CONFLICT (id) DO UPDATE SET seen = excluded.seen", [id, queue, process.pid, Date.now() / 1000]);
  }

  /** Workers seen in the last `withinS` seconds, per queue. */
  async liveWorkers(withinS: number): Promise<Record<string, number>> {
    const rows = await this.sql.all<{ queue: string; n: number }>("SELECT queue, count(*) AS n FROM workers WHERE seen >= ? GROUP BY queue", [Date.now() / 1000 - withinS]);
    return Object.fromEntries(rows.map((r) => [r.queue, Number(r.n)]));
  }

  async bump(name: string): Promise<void> {
    const s = bumpStmt(name);
    await this.sql.run(s.sql, s.params);
  }

  async counter(name: string): Promise<number> {
    const r = await this.get<{ value: number }>("SELECT value FROM counters WHERE name = ?", [name]);
    return r ? Number(r.value) : 0;
  }

  async cached(key: string, maxAgeS: number): Promise<string | undefined> {
    const r = await this.get<{ zip_name: string }>("SELECT zip_name FROM cache WHERE key = ? AND created >= ?", [key, Date.now() / 1000 - maxAgeS]);
    return r?.zip_name;
  }

  async putCache(key: string, zipName: string): Promise<void> {
    await this.sql.run("INSERT INTO cache (key, zip_name, created) VALUES (?, ?, ?) ON CONFLICT (key) DO UPDATE SET zip_name = excluded.zip_name, created = excluded.created", [key, zipName, Date.now() / 1000]);
  }

  async dropCache(key: string): Promise<void> {
    await this.sql.run("DELETE FROM cache WHERE key = ?", [key]);
  }

  /** Empties the cache; returns the ZIP names it held. */
  async clearCache(): Promise<string[]> {
    const rows = await this.sql.all<{ zip_name: string }>("DELETE FROM cache RETURNING zip_name");
    return rows.map((r) => r.zip_name);
  }

  async logRequest(resourceId: string, email: string): Promise<void> {
    await this.sql.run("INSERT INTO requests (timestamp, resource_id, email) VALUES (?, ?, ?)", [Date.now() / 1000, resourceId, email]);
  }

  async logError(resourceId: string, email: string, message: string): Promise<void> {
    await this.sql.run("INSERT INTO errors (timestamp, resource_id, email, message) VALUES (?, ?, ?, ?)", [Date.now() / 1000, resourceId, email, message]);
  }

  /** Per-resource totals with the grand total under "*" (of the filtered resource when one is given). */
  async totals(resourceId?: string): Promise<Record<string, Totals>> {
    const where = resourceId === undefined ? "" : "WHERE resource_id = ?";
    const args = resourceId === undefined ? [] : [resourceId];
    const out: Record<string, Totals> = {};
    const req = await this.sql.all<{ resource_id: string; requests: number; emails: number }>(
      `SELECT resource_id, count(*) AS requests, count(DISTINCT email) AS emails FROM requests ${where} GROUP BY resource_id`,
      args,
    );
    for (const r of req) out[r.resource_id] = { emails: Number(r.emails), requests: Number(r.requests), errors: 0 };
    const errs = await this.sql.all<{ resource_id: string; errors: number }>(`SELECT resource_id, count(*) AS errors FROM errors ${where} GROUP BY resource_id`, args);
    for (const e of errs) (out[e.resource_id] ??= { emails: 0, requests: 0, errors: 0 }).errors = Number(e.errors);
    const all = (await this.get<{ requests: number; emails: number }>(`SELECT count(*) AS requests, count(DISTINCT email) AS emails FROM requests ${where}`, args))!;
    const allErr = (await this.get<{ errors: number }>(`SELECT count(*) AS errors FROM errors ${where}`, args))!;
    out["*"] = { emails: Number(all.emails), requests: Number(all.requests), errors: Number(allErr.errors) };
    return out;
  }

  async entries(table: "requests" | "errors", f: { offset: number; limit: number; resourceId?: string; email?: string }): Promise<LogEntry[]> {
    const cond: string[] = [];
    const args: Param[] = [];
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
    const rows = await this.sql.all<Record<string, unknown>>(`SELECT ${cols} FROM ${table} ${where} ORDER BY timestamp DESC, id DESC LIMIT ? OFFSET ?`, [...args, f.limit, f.offset]);
    return rows.map((r) => ({
      email: String(r.email),
      resource_id: String(r.resource_id),
      timestamp: Number(r.timestamp),
      ...(table === "errors" ? { message: String(r.message) } : {}),
    }));
  }
}

function bumpStmt(name: string): Stmt {
  return { sql: "INSERT INTO counters (name, value) VALUES (?, 1) ON CONFLICT (name) DO UPDATE SET value = counters.value + 1", params: [name] };
}

/** Opens the configured engine (PostgreSQL connects, and creates its schema, on first use: see `ready`). */
export function openState(state: StateConfig): PackagerDb {
  return new PackagerDb(state.engine === "sqlite" ? new SqliteDriver(state.path) : new PostgresDriver(state));
}
