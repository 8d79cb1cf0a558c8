import { mkdirSync } from "node:fs";
import { dirname } from "node:path";
import { DatabaseSync } from "node:sqlite";
import type { SQLInputValue } from "node:sqlite";
import { GeoWatchError } from "@geowatch/core";
import type { Dialect, SqlDb } from "./db.js";
import { words } from "./db.js";
import { SqlStorage } from "./sql.js";

const SCHEMA = `
CREATE TABLE IF NOT EXISTS services (
  id INTEGER PRIMARY KEY, url TEXT NOT NULL, type TEXT NOT NULL, title TEXT, abstract TEXT, owner TEXT, version TEXT,
  monitored INTEGER NOT NULL DEFAULT 1, created_at INTEGER NOT NULL, harvested_at INTEGER, harvest_ok INTEGER,
  harvest_error TEXT, checks_total INTEGER NOT NULL DEFAULT 0, checks_ok INTEGER NOT NULL DEFAULT 0,
  recent_reliability REAL, UNIQUE (url, type));
CREATE TABLE IF NOT EXISTS layers (
  id INTEGER PRIMARY KEY, identifier TEXT NOT NULL UNIQUE, service_id INTEGER REFERENCES services(id) ON DELETE CASCADE,
  name TEXT NOT NULL, title TEXT NOT NULL, abstract TEXT NOT NULL DEFAULT '', keywords TEXT NOT NULL DEFAULT '[]',
  crs TEXT NOT NULL DEFAULT '[]', minx REAL, miny REAL, maxx REAL, maxy REAL, time_start INTEGER, time_end INTEGER,
  type TEXT NOT NULL, url TEXT NOT NULL, owner TEXT NOT NULL DEFAULT '', extra TEXT NOT NULL DEFAULT '{}',
  monitored INTEGER NOT NULL DEFAULT 1, updated_at INTEGER NOT NULL, checks_total INTEGER NOT NULL DEFAULT 0,
  checks_ok INTEGER NOT NULL DEFAULT 0, recent_reliability REAL);
CREATE INDEX IF NOT EXISTS layers_service ON layers (service_id);
CREATE INDEX IF NOT EXISTS layers_time ON layers (time_start, time_end);
CREATE INDEX IF NOT EXISTS layers_owner ON layers (owner);
CREATE VIRTUAL TABLE IF NOT EXISTS layers_fts USING fts5(title, abstract, keywords, content='layers', content_rowid='id');
-- x, y and time (days since the epoch; layers without a time extent span everything) in one R*Tree, so a
-- bbox + time search is one index lookup. Its 32-bit floats round outwards; exact predicates follow.
CREATE VIRTUAL TABLE IF NOT EXISTS layers_rtree USING rtree(id, minx, maxx, miny, maxy, mint, maxt);
CREATE TRIGGER IF NOT EXISTS layers_ai AFTER INSERT ON layers BEGIN
  INSERT INTO layers_fts (rowid, title, abstract, keywords) VALUES (new.id, new.title, new.abstract, new.keywords);
  INSERT INTO layers_rtree (id, minx, maxx, miny, maxy, mint, maxt) SELECT new.id, new.minx, new.maxx, new.miny, new.maxy, coalesce(new.time_start / 86400000.0, -1e9), coalesce(new.time_end / 86400000.0, 1e9) WHERE new.minx IS NOT NULL;
END;
CREATE TRIGGER IF NOT EXISTS layers_ad AFTER DELETE ON layers BEGIN
  INSERT INTO layers_fts (layers_fts, rowid, title, abstract, keywords) VALUES ('delete', old.id, old.title, old.abstract, old.keywords);
  DELETE FROM layers_rtree WHERE id = old.id;
END;
CREATE TRIGGER IF NOT EXISTS layers_au AFTER UPDATE OF title, abstract, keywords, minx, miny, maxx, maxy, time_start, time_end ON layers BEGIN
  INSERT INTO layers_fts (layers_fts, rowid, title, abstract, keywords) VALUES ('delete', old.id, old.title, old.abstract, old.keywords);
  INSERT INTO layers_fts (rowid, title, abstract, keywords) VALUES (new.id, new.title, new.abstract, new.keywords);
  DELETE FROM layers_rtree WHERE id = old.id;
  INSERT INTO layers_rtree (id, minx, maxx, miny, maxy, mint, maxt) SELECT new.id, new.minx, new.maxx, new.miny, new.maxy, coalesce(new.time_start / 86400000.0, -1e9), coalesce(new.time_end / 86400000.0, 1e9) WHERE new.minx IS NOT NULL;
END;
CREATE TABLE IF NOT EXISTS layer_keywords (layer_id INTEGER NOT NULL REFERENCES layers(id) ON DELETE CASCADE, keyword TEXT NOT NULL);
CREATE INDEX IF NOT EXISTS layer_keywords_layer ON layer_keywords (layer_id);
CREATE TABLE IF NOT EXISTS checks (
  id INTEGER PRIMARY KEY, service_id INTEGER NOT NULL REFERENCES services(id) ON DELETE CASCADE,
  layer_id INTEGER REFERENCES layers(id) ON DELETE CASCADE, at INTEGER NOT NULL, ok INTEGER NOT NULL,
  response_ms REAL NOT NULL, message TEXT);
CREATE INDEX IF NOT EXISTS checks_target ON checks (service_id, layer_id, id);
CREATE TABLE IF NOT EXISTS schedule (name TEXT PRIMARY KEY, next_at INTEGER NOT NULL);
CREATE TABLE IF NOT EXISTS host_slots (host TEXT NOT NULL, slot INTEGER NOT NULL, holder TEXT NOT NULL, expires_at INTEGER NOT NULL, PRIMARY KEY (host, slot));
`;

const dialect: Dialect = {
  textQuery(text) {
    const w = words(text);
    return w.length ? w.map((x) => `"${x}"*`).join(" AND ") : undefined;
  },
  text(query) {
    return {
      join: "JOIN (SELECT rowid AS rid, -bm25(layers_fts) AS score FROM layers_fts WHERE layers_fts MATCH ?) f ON f.rid = l.id",
      score: "f.score",
      params: [query],
    };
  },
  bbox([minx, miny, maxx, maxy], time) {
    const t = time?.from !== undefined || time?.to !== undefined;
    return {
      where: `l.id IN (SELECT id FROM layers_rtree WHERE maxx >= ? AND minx <= ? AND maxy >= ? AND miny <= ?${t ? " AND maxt >= ? AND mint <= ?" : ""})`,
      params: [minx, maxx, miny, maxy, ...(t ? [time!.from !== undefined ? time!.from / 86_400_000 : -1e10, time!.to !== undefined ? time!.to / 86_400_000 : 1e10] : [])],
    };
  },
  // Callers pass only non-negative values, where truncation is floor.
  floorInt: (expr) => `CAST(${expr} AS INTEGER)`,
};

class SqliteDb implements SqlDb {
  readonly dialect = "sqlite" as const;
  private chain: Promise<unknown> = Promise.resolve();
  constructor(readonly db: DatabaseSync) {}

  async all<T>(sql: string, params: unknown[] = []): Promise<T[]> {
    return this.db.prepare(sql).all(...(params as SQLInputValue[])) as T[];
  }
  async run(sql: string, params: unknown[] = []): Promise<{ changes: number }> {
    const r = this.db.prepare(sql).run(...(params as SQLInputValue[]));
    return { changes: Number(r.changes) };
  }
  many<T>(sql: string, rows: unknown[][]): (T | undefined)[] {
    const stmt = this.db.prepare(sql);
    const out: (T | undefined)[] = new Array(rows.length);
    for (let i = 0; i < rows.length; i++) out[i] = stmt.get(...(rows[i] as SQLInputValue[])) as T | undefined;
    return out;
  }
  // One connection: transactions of this process take turns; BEGIN IMMEDIATE takes the file's write lock
  // at once, so processes sharing the file serialise on SQLite's own lock (busy_timeout waits for it).
  tx<T>(fn: (db: SqlDb) => Promise<T>): Promise<T> {
    const next = this.chain.then(async () => {
      this.db.exec("BEGIN IMMEDIATE");
      try {
        const out = await fn(this);
        this.db.exec("COMMIT");
        return out;
      } catch (err) {
        this.db.exec("ROLLBACK");
        throw err;
      }
    });
    this.chain = next.catch(() => undefined);
    return next;
  }
  async close(): Promise<void> {
    await this.chain;
    if (this.db.isOpen) this.db.close();
  }
}

/** The embedded engine: one SQLite file (WAL), FTS5 for text, R*Tree for bboxes. `:memory:` works for tests. */
export function sqliteStorage(path: string): SqlStorage {
  if (path !== ":memory:") mkdirSync(dirname(path), { recursive: true });
  let db: DatabaseSync;
  try {
    db = new DatabaseSync(path);
  } catch (err) {
    throw new GeoWatchError("CONNECT", `cannot open registry database "${path}": ${(err as Error).message}`, { backend: "registry", cause: err });
  }
  db.exec("PRAGMA journal_mode=WAL; PRAGMA synchronous=NORMAL; PRAGMA busy_timeout=10000; PRAGMA foreign_keys=ON;");
  return new SqlStorage("sqlite", new SqliteDb(db), dialect, async (d) => {
    (d as SqliteDb).db.exec(SCHEMA);
  });
}
