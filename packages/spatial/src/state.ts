/** Per-track geofence state: which fences each track is inside, and where it was last seen. */
import { createRequire } from "node:module";
import { mkdirSync } from "node:fs";
import { dirname, resolve } from "node:path";
import { GeoWatchError } from "@geowatch/core";

/** What the geofence stage remembers about one track. */
export interface TrackState {
  /** Ids of the fences the track is inside, sorted. */
  fences: string[];
  /** Last position seen (used by `cross` events). */
  x: number;
  y: number;
}

/**
 * Where per-track state lives. The stage reads the tracks of a whole batch in one `get` and writes the
 * changed ones in one `set`, so a store can batch its I/O. Either method may return a promise.
 */
export interface GeofenceState {
  /** States of the given tracks, in the same order; `undefined` for a track never seen. */
  get(tracks: readonly string[]): ReadonlyArray<TrackState | undefined> | Promise<ReadonlyArray<TrackState | undefined>>;
  /** Stores the states of the given tracks (replacing what was there). */
  set(entries: ReadonlyArray<readonly [track: string, state: TrackState]>): void | Promise<void>;
  /** Forgets a track. */
  delete?(track: string): void | Promise<void>;
  close?(): void | Promise<void>;
}

/** State in a Map: fast, lost on restart. */
export function memoryGeofenceState(): GeofenceState & { readonly size: number } {
  const map = new Map<string, TrackState>();
  return {
    get: (tracks) => tracks.map((t) => map.get(t)),
    set: (entries) => {
      for (const [t, s] of entries) map.set(t, s);
    },
    delete: (track) => {
      map.delete(track);
    },
    get size() {
      return map.size;
    },
  };
}

interface SqliteStatement {
  get(...params: unknown[]): unknown;
  run(...params: unknown[]): unknown;
}
interface SqliteDb {
  exec(sql: string): void;
  prepare(sql: string): SqliteStatement;
  close(): void;
}

/**
 * State in a SQLite file (`node:sqlite`, WAL mode): survives restarts. Each `set` is one transaction.
 * Loads `node:sqlite` only when called, so the memory state never pays for it.
 */
export function sqliteGeofenceState(path: string): GeofenceState {
  const require = createRequire(import.meta.url);
  let db: SqliteDb;
  try {
    if (path !== ":memory:") mkdirSync(dirname(resolve(path)), { recursive: true });
    const { DatabaseSync } = require("node:sqlite") as { DatabaseSync: new (p: string) => SqliteDb };
    db = new DatabaseSync(path);
    db.exec("PRAGMA journal_mode = WAL; PRAGMA synchronous = NORMAL;");
    db.exec("CREATE TABLE IF NOT EXISTS geofence_state (track TEXT PRIMARY KEY, fences TEXT NOT NULL, x REAL, y REAL) WITHOUT ROWID");
  } catch (err) {
    throw new GeoWatchError("STORE", `cannot open geofence state ${JSON.stringify(path)}`, { backend: "spatial", cause: err });
  }
  const select = db.prepare("SELECT fences, x, y FROM geofence_state WHERE track = ?");
  const upsert = db.prepare("INSERT OR REPLACE INTO geofence_state (track, fences, x, y) VALUES (?, ?, ?, ?)");
  const remove = db.prepare("DELETE FROM geofence_state WHERE track = ?");
  let closed = false;
  const check = (): void => {
    if (closed) throw new GeoWatchError("CLOSED", `geofence state ${JSON.stringify(path)} is closed`, { backend: "spatial" });
  };
  return {
    get: (tracks) => {
      check();
      return tracks.map((t) => {
        const row = select.get(t) as { fences: string; x: number | null; y: number | null } | undefined;
        return row === undefined ? undefined : { fences: JSON.parse(row.fences) as string[], x: row.x ?? NaN, y: row.y ?? NaN };
      });
    },
    set: (entries) => {
      check();
      db.exec("BEGIN");
      try {
        for (const [t, s] of entries) upsert.run(t, JSON.stringify(s.fences), Number.isFinite(s.x) ? s.x : null, Number.isFinite(s.y) ? s.y : null);
        db.exec("COMMIT");
      } catch (err) {
        db.exec("ROLLBACK");
        throw new GeoWatchError("STORE", `cannot write geofence state ${JSON.stringify(path)}`, { backend: "spatial", cause: err, retryable: true });
      }
    },
    delete: (track) => {
      check();
      remove.run(track);
    },
    close: () => {
      if (closed) return;
      closed = true;
      db.close();
    },
  };
}
