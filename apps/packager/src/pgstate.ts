/** The PostgreSQL engine of the packager's state (`state: { engine: postgres }`): every machine shares it. */
import pg from "pg";
import { GeoWatchError } from "@geowatch/core";
import type { SqlDriver } from "./db.js";

const SCHEMA = [
  `CREATE TABLE IF NOT EXISTS jobs (
    id TEXT PRIMARY KEY, kind TEXT NOT NULL, queue TEXT NOT NULL, resource_id TEXT NOT NULL, email TEXT NOT NULL,
    state TEXT NOT NULL, rows_done BIGINT NOT NULL DEFAULT 0, rows_total BIGINT, attempts INTEGER NOT NULL DEFAULT 0,
    zip_name TEXT, error TEXT, created DOUBLE PRECISION NOT NULL, updated DOUBLE PRECISION NOT NULL)`,
  "CREATE INDEX IF NOT EXISTS jobs_open ON jobs (state) WHERE state IN ('queued', 'running')",
  "CREATE TABLE IF NOT EXISTS cache (key TEXT PRIMARY KEY, zip_name TEXT NOT NULL, created DOUBLE PRECISION NOT NULL)",
  "CREATE TABLE IF NOT EXISTS requests (id BIGSERIAL PRIMARY KEY, timestamp DOUBLE PRECISION NOT NULL, resource_id TEXT NOT NULL, email TEXT NOT NULL)",
  "CREATE INDEX IF NOT EXISTS requests_resource ON requests (resource_id, timestamp)",
  "CREATE TABLE IF NOT EXISTS errors (id BIGSERIAL PRIMARY KEY, timestamp DOUBLE PRECISION NOT NULL, resource_id TEXT NOT NULL, email TEXT NOT NULL, message TEXT NOT NULL)",
  "CREATE INDEX IF NOT EXISTS errors_resource ON errors (resource_id, timestamp)",
  "CREATE TABLE IF NOT EXISTS counters (name TEXT PRIMARY KEY, value BIGINT NOT NULL)",
  "CREATE TABLE IF NOT EXISTS workers (id TEXT PRIMARY KEY, queue TEXT NOT NULL, pid INTEGER NOT NULL, seen DOUBLE PRECISION NOT NULL)",
];

// BIGINT (count(*), counters) and NUMERIC as numbers: the values here stay far below 2^53.
const numbers: typeof pg.types = {
  ...pg.types,
  getTypeParser: ((oid: number, format?: string) =>
    oid === 20 || oid === 1700 ? (v: string) => Number(v) : pg.types.getTypeParser(oid, format as "text")) as typeof pg.types.getTypeParser,
};

/** `?` placeholders to `$1..$n` (the SQL of the state never has a `?` inside a literal). */
function numbered(sql: string): string {
  let i = 0;
  return sql.replace(/\?/g, () => `$${++i}`);
}

/** The URL with the password from `password` (env or file) when given; the result is never logged. */
export function connectionString(url: string, password?: string): string {
  if (password === undefined) return url;
  const u = new URL(url);
  u.password = encodeURIComponent(password);
  return u.toString();
}

export class PostgresDriver implements SqlDriver {
  readonly engine = "postgres" as const;
  private readonly pool: pg.Pool;
  private schema: Promise<void> | undefined;

  constructor(o: { url: string; password?: string; poolSize?: number }) {
    // Bounded waits: a server that stops answering fails the call (and the worker thread) instead of hanging it.
    this.pool = new pg.Pool({ connectionString: connectionString(o.url, o.password), max: o.poolSize ?? 4, types: numbers, connectionTimeoutMillis: 10_000, query_timeout: 30_000 });
    // An idle client's error (the server restarted) must not crash the process; the next query reconnects.
    this.pool.on("error", () => undefined);
  }

  /** Creates the schema once per process (idempotent; several processes starting at once take turns). A failure is retried by the next call. */
  private ready(): Promise<void> {
    this.schema ??= this.migrate().catch((err: unknown) => {
      this.schema = undefined;
      // The message names the database error, never the URL (it may hold a password).
      throw new GeoWatchError("CONNECT", `cannot prepare the packager's PostgreSQL state: ${(err as Error).message}`, { backend: "packager", cause: err, retryable: true });
    });
    return this.schema;
  }

  private migrate(): Promise<void> {
    return this.tx(async (client) => {
      await client.query("SELECT pg_advisory_xact_lock(4242011)");
      for (const s of SCHEMA) await client.query(s);
    });
  }

  /** Runs `fn` in one transaction on one pooled connection: committed when it resolves, rolled back when it throws. */
  private async tx(fn: (client: pg.PoolClient) => Promise<void>): Promise<void> {
    const client = await this.pool.connect();
    try {
      await client.query("BEGIN");
      await fn(client);
      await client.query("COMMIT");
    } catch (err) {
      await client.query("ROLLBACK").catch(() => undefined);
      throw err;
    } finally {
      client.release();
    }
  }

  async all<T>(sql: string, params: (string | number | null)[] = []): Promise<T[]> {
    await this.ready();
    return (await this.pool.query(numbered(sql), params)).rows as T[];
  }

  async run(sql: string, params: (string | number | null)[] = []): Promise<void> {
    await this.ready();
    await this.pool.query(numbered(sql), params);
  }

  async batch(stmts: { sql: string; params: (string | number | null)[] }[]): Promise<void> {
    await this.ready();
    await this.tx(async (client) => {
      for (const s of stmts) await client.query(numbered(s.sql), s.params);
    });
  }

  async close(): Promise<void> {
    if (this.pool.ended || this.pool.ending) return;
    await this.pool.end();
  }
}
