import { GeoWatchError } from "@geowatch/core";
import pg from "pg";
import type { Dialect, SqlDb } from "./db.js";
import { words } from "./db.js";
import { SqlStorage } from "./sql.js";

const SCHEMA = `
CREATE EXTENSION IF NOT EXISTS postgis;
CREATE TABLE IF NOT EXISTS services (
  id BIGSERIAL PRIMARY KEY, url TEXT NOT NULL, type TEXT NOT NULL, title TEXT, abstract TEXT, owner TEXT, version TEXT,
  monitored INTEGER NOT NULL DEFAULT 1, created_at BIGINT NOT NULL, harvested_at BIGINT, harvest_ok INTEGER,
  harvest_error TEXT, checks_total INTEGER NOT NULL DEFAULT 0, checks_ok INTEGER NOT NULL DEFAULT 0,
  recent_reliability DOUBLE PRECISION, UNIQUE (url, type));
CREATE TABLE IF NOT EXISTS layers (
  id BIGSERIAL PRIMARY KEY, identifier TEXT NOT NULL UNIQUE, service_id BIGINT REFERENCES services(id) ON DELETE CASCADE,
  name TEXT NOT NULL, title TEXT NOT NULL, abstract TEXT NOT NULL DEFAULT '', keywords TEXT NOT NULL DEFAULT '[]',
  crs TEXT NOT NULL DEFAULT '[]', minx DOUBLE PRECISION, miny DOUBLE PRECISION, maxx DOUBLE PRECISION, maxy DOUBLE PRECISION,
  time_start BIGINT, time_end BIGINT, type TEXT NOT NULL, url TEXT NOT NULL, owner TEXT NOT NULL DEFAULT '',
  extra TEXT NOT NULL DEFAULT '{}', monitored INTEGER NOT NULL DEFAULT 1, updated_at BIGINT NOT NULL,
  checks_total INTEGER NOT NULL DEFAULT 0, checks_ok INTEGER NOT NULL DEFAULT 0, recent_reliability DOUBLE PRECISION,
  tsv tsvector GENERATED ALWAYS AS (to_tsvector('simple', title || ' ' || abstract || ' ' || keywords)) STORED,
  geom geometry(Polygon, 4326) GENERATED ALWAYS AS (
    CASE WHEN minx IS NULL THEN NULL ELSE ST_MakeEnvelope(minx, miny, maxx, maxy, 4326) END) STORED);
CREATE INDEX IF NOT EXISTS layers_service ON layers (service_id);
CREATE INDEX IF NOT EXISTS layers_time ON layers (time_start, time_end);
CREATE INDEX IF NOT EXISTS layers_owner ON layers (owner);
CREATE INDEX IF NOT EXISTS layers_tsv ON layers USING GIN (tsv);
CREATE INDEX IF NOT EXISTS layers_geom ON layers USING GIST (geom);
CREATE TABLE IF NOT EXISTS layer_keywords (layer_id BIGINT NOT NULL REFERENCES layers(id) ON DELETE CASCADE, keyword TEXT NOT NULL);
CREATE INDEX IF NOT EXISTS layer_keywords_layer ON layer_keywords (layer_id);
CREATE TABLE IF NOT EXISTS checks (
  id BIGSERIAL PRIMARY KEY, service_id BIGINT NOT NULL REFERENCES services(id) ON DELETE CASCADE,
  layer_id BIGINT REFERENCES layers(id) ON DELETE CASCADE, at BIGINT NOT NULL, ok INTEGER NOT NULL,
  response_ms DOUBLE PRECISION NOT NULL, message TEXT);
CREATE INDEX IF NOT EXISTS checks_target ON checks (service_id, layer_id, id);
CREATE TABLE IF NOT EXISTS schedule (name TEXT PRIMARY KEY, next_at BIGINT NOT NULL);
CREATE TABLE IF NOT EXISTS host_slots (host TEXT NOT NULL, slot INTEGER NOT NULL, holder TEXT NOT NULL, expires_at BIGINT NOT NULL, PRIMARY KEY (host, slot));
`;

const dialect: Dialect = {
  textQuery(text) {
    const w = words(text);
    return w.length ? w.map((x) => `${x}:*`).join(" & ") : undefined;
  },
  text(query) {
    return {
      where: "l.tsv @@ to_tsquery('simple', ?)",
      score: "ts_rank(l.tsv, to_tsquery('simple', ?))",
      params: [query],
      scoreParams: [query],
    };
  },
  bbox([minx, miny, maxx, maxy]) {
    return { where: "l.geom && ST_MakeEnvelope(?, ?, ?, ?, 4326)", params: [minx, miny, maxx, maxy] };
  },
  floorInt: (expr) => `floor(${expr})::bigint`,
};

const numbers: typeof pg.types = {
  ...pg.types,
  getTypeParser: ((oid: number, format?: string) =>
    oid === 20 || oid === 1700 ? (v: string) => Number(v) : pg.types.getTypeParser(oid, format as "text")) as typeof pg.types.getTypeParser,
};

/** `?` placeholders to `$1..$n` (the SQL here never has a `?` inside a literal). */
function numbered(sql: string): string {
  let i = 0;
  return sql.replace(/\?/g, () => `$${++i}`);
}

interface Queryable {
  query(sql: string, params?: unknown[]): Promise<{ rows: unknown[]; rowCount: number | null }>;
}

class PgDb implements SqlDb {
  readonly dialect = "postgres" as const;
  constructor(
    private readonly pool: pg.Pool,
    private readonly client?: Queryable,
  ) {}

  private q(): Queryable {
    return this.client ?? (this.pool as unknown as Queryable);
  }
  async all<T>(sql: string, params: unknown[] = []): Promise<T[]> {
    return (await this.q().query(numbered(sql), params)).rows as T[];
  }
  async run(sql: string, params: unknown[] = []): Promise<{ changes: number }> {
    return { changes: (await this.q().query(numbered(sql), params)).rowCount ?? 0 };
  }
  async tx<T>(fn: (db: SqlDb) => Promise<T>): Promise<T> {
    if (this.client) return fn(this);
    const client = await this.pool.connect();
    try {
      await client.query("BEGIN");
      const out = await fn(new PgDb(this.pool, client as unknown as Queryable));
      await client.query("COMMIT");
      return out;
    } catch (err) {
      await client.query("ROLLBACK").catch(() => undefined);
      throw err;
    } finally {
      client.release();
    }
  }
  async close(): Promise<void> {
    // Closing twice (the registry, then its owner) is harmless.
    if (this.pool.ended || this.pool.ending) return;
    await this.pool.end();
  }
}

/** The scale-out engine: PostgreSQL + PostGIS, full-text search (tsvector + GIN) and GiST bboxes. */
export function postgresStorage(url: string, opts: { max?: number } = {}): SqlStorage {
  const pool = new pg.Pool({ connectionString: url, max: opts.max ?? 10, types: numbers });
  // An idle client's error (the server restarted) must not crash the process; the next query reconnects.
  pool.on("error", () => undefined);
  const db = new PgDb(pool);
  return new SqlStorage("postgres", db, dialect, async (d) => {
    try {
      await d.tx(async (t) => {
        // Several processes may start at once: one migrates, the others wait for it.
        await t.run("SELECT pg_advisory_xact_lock(4242001)");
        for (const stmt of SCHEMA.split(";\n").map((s) => s.trim()).filter(Boolean)) await t.run(stmt);
      });
    } catch (err) {
      throw new GeoWatchError("CONNECT", `cannot prepare the PostgreSQL registry schema: ${(err as Error).message}`, {
        backend: "registry", cause: err, retryable: true,
      });
    }
  });
}
