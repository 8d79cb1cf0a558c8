/** Per-track geofence state: which fences each track is inside, where it was last seen, what input it covers. */
import { createRequire } from "node:module";
import { mkdirSync } from "node:fs";
import { dirname, resolve } from "node:path";
import { GeoWatchError } from "@geowatch/core";

/**
 * Per input stream (`Message.position.stream`), the offset of the last input a track state includes. Own
 * properties only: a stream may be named anything, `__proto__` included.
 */
export type CoveredPositions = Readonly<Record<string, string | number>>;

/** What the geofence stage remembers about one track. */
export interface TrackState {
  /** Ids of the fences the track is inside, sorted. */
  fences: string[];
  /** Last position seen (used by `cross` events). */
  x: number;
  y: number;
  /**
   * The input this state includes, per stream: a replayed message at or before it is skipped (its events
   * were delivered before this state was stored). Absent for states of inputs without a position.
   */
  covered?: CoveredPositions;
}

/**
 * Where per-track state lives. The stage reads the tracks of a batch it does not hold in memory in one
 * `get` and writes a delivered batch's changed tracks in one `set`, so a store can batch its I/O. Either
 * method may return a promise.
 */
export interface GeofenceState {
  /** States of the given tracks, in the same order; `undefined` for a track never seen. */
  get(tracks: readonly string[]): ReadonlyArray<TrackState | undefined> | Promise<ReadonlyArray<TrackState | undefined>>;
  /** Stores the states of the given tracks (replacing what was there), all or nothing. */
  set(entries: ReadonlyArray<readonly [track: string, state: TrackState]>): void | Promise<void>;
  /** Forgets a track. */
  delete?(track: string): void | Promise<void>;
  /**
   * Shared by several processes (a consumer group), each owning some input streams (Kafka partitions).
   * The stage then trusts what it holds in memory about a stream's tracks only while it reads that stream
   * without a gap, and calls `restore` before reading the tracks of a stream it (re)starts reading.
   */
  readonly partitioned?: boolean;
  /**
   * Brings the states of these streams' tracks up to what the shared store holds (a changelog replay);
   * after it, `get` answers them. Stores that read through on every `get` need not have it.
   */
  restore?(streams: readonly string[]): void | Promise<void>;
  close?(): void | Promise<void>;
}

/** The one stream and offset a state covers, when it covers exactly one stream (keyed input). */
export function onlyPosition(st: TrackState): { stream: string; offset: string | number } | undefined {
  const c = st.covered;
  if (c === undefined) return undefined;
  let stream: string | undefined;
  for (const k in c) {
    if (stream !== undefined) return undefined;
    stream = k;
  }
  return stream === undefined ? undefined : { stream, offset: c[stream]! };
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
  all(...params: unknown[]): unknown[];
  run(...params: unknown[]): unknown;
}
interface SqliteDb {
  exec(sql: string): void;
  prepare(sql: string): SqliteStatement;
  close(): void;
}

/** Parses a stored `covered` column (JSON.parse makes every key, "__proto__" too, an own property). */
function parseCovered(text: string | null): CoveredPositions | undefined {
  if (text === null) return undefined;
  const raw = JSON.parse(text) as unknown;
  if (raw === null || typeof raw !== "object" || Array.isArray(raw)) return undefined;
  for (const v of Object.values(raw)) if (typeof v !== "string" && typeof v !== "number") return undefined;
  return raw as CoveredPositions;
}

/**
 * State in a SQLite file (`node:sqlite`, WAL mode): survives restarts. Each `set` is one transaction.
 * Opens (and creates) the file when called; loads `node:sqlite` only then, so the memory state never pays
 * for it. Databases written before the `covered` column existed get it added (their states are never
 * skipped on until rewritten).
 */
export function sqliteGeofenceState(path: string): GeofenceState {
  const require = createRequire(import.meta.url);
  let db: SqliteDb;
  try {
    if (path !== ":memory:") mkdirSync(dirname(resolve(path)), { recursive: true });
    const { DatabaseSync } = require("node:sqlite") as { DatabaseSync: new (p: string) => SqliteDb };
    db = new DatabaseSync(path);
    db.exec("PRAGMA journal_mode = WAL; PRAGMA synchronous = NORMAL;");
    db.exec("CREATE TABLE IF NOT EXISTS geofence_state (track TEXT PRIMARY KEY, fences TEXT NOT NULL, x REAL, y REAL, covered TEXT) WITHOUT ROWID");
    const columns = db.prepare("PRAGMA table_info(geofence_state)").all() as Array<{ name: string }>;
    if (!columns.some((c) => c.name === "covered")) db.exec("ALTER TABLE geofence_state ADD COLUMN covered TEXT");
  } catch (err) {
    throw new GeoWatchError("STORE", `cannot open geofence state ${JSON.stringify(path)}`, { backend: "spatial", cause: err });
  }
  const select = db.prepare("SELECT fences, x, y, covered FROM geofence_state WHERE track = ?");
  const upsert = db.prepare("INSERT OR REPLACE INTO geofence_state (track, fences, x, y, covered) VALUES (?, ?, ?, ?, ?)");
  const remove = db.prepare("DELETE FROM geofence_state WHERE track = ?");
  let closed = false;
  const check = (): void => {
    if (closed) throw new GeoWatchError("CLOSED", `geofence state ${JSON.stringify(path)} is closed`, { backend: "spatial" });
  };
  return {
    get: (tracks) => {
      check();
      return tracks.map((t) => {
        const row = select.get(t) as { fences: string; x: number | null; y: number | null; covered: string | null } | undefined;
        if (row === undefined) return undefined;
        return { fences: JSON.parse(row.fences) as string[], x: row.x ?? NaN, y: row.y ?? NaN, covered: parseCovered(row.covered) };
      });
    },
    set: (entries) => {
      check();
      db.exec("BEGIN");
      try {
        for (const [t, s] of entries) {
          upsert.run(
            t,
            JSON.stringify(s.fences),
            Number.isFinite(s.x) ? s.x : null,
            Number.isFinite(s.y) ? s.y : null,
            s.covered === undefined ? null : JSON.stringify(s.covered),
          );
        }
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
