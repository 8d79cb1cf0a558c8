/**
 * Geofence state in PostgreSQL: one row per track, shared by every process of a consumer group. A write
 * never moves a track back: a row is replaced only by a state of the same input stream at the same or a
 * later offset (a process that lost a partition may still commit a batch of it after the new owner did).
 */
import { GeoWatchError } from "@geowatch/core";
import type { Logger } from "@geowatch/core";
import type { CoveredPositions, GeofenceState, TrackState } from "./state.js";
import { onlyPosition } from "./state.js";

/** What the stage needs of a `pg` Pool (declared here instead of importing the client's types). */
interface PgPool {
  query(text: string, values?: unknown[]): Promise<{ rows: Array<Record<string, unknown>> }>;
  end(): Promise<void>;
  on(event: "error", listener: (err: Error) => void): unknown;
}

export interface PostgresStateOptions {
  /** Connection URL (`postgres://user@host:port/db`). */
  url: string;
  /** Table of the states (`name` or `schema.name`), created when missing. Default `geofence_state`. */
  table?: string;
}

const IDENT = /^[A-Za-z_][A-Za-z0-9_]*(\.[A-Za-z_][A-Za-z0-9_]*)?$/;
const DIGITS = /^[0-9]+$/;

/** The URL without its password, for messages. */
function safeUrl(url: string): string {
  try {
    const u = new URL(url);
    if (u.password) u.password = "***";
    return u.toString();
  } catch {
    return "(unparsable URL)";
  }
}

function coveredOf(v: unknown): CoveredPositions | undefined {
  if (v === null || typeof v !== "object" || Array.isArray(v)) return undefined;
  for (const x of Object.values(v)) if (typeof x !== "string" && typeof x !== "number") return undefined;
  return v as CoveredPositions;
}

/**
 * Opens (and creates when missing) the state table. Loads `pg` only here: install it next to
 * `@geowatch/spatial` to use this engine.
 */
export async function postgresGeofenceState(options: PostgresStateOptions, logger?: Logger): Promise<GeofenceState> {
  const table = options.table ?? "geofence_state";
  if (!IDENT.test(table)) throw new GeoWatchError("CONFIG", `postgres state table ${JSON.stringify(table)} must be a name or schema.name (letters, digits, _)`, { backend: "spatial" });
  const quoted = table.split(".").map((p) => `"${p}"`).join(".");
  const where = `${quoted} on ${safeUrl(options.url)}`;
  let Pool: new (config: Record<string, unknown>) => PgPool;
  try {
    const mod = (await import("pg")) as unknown as { default?: { Pool: typeof Pool }; Pool?: typeof Pool };
    Pool = (mod.default?.Pool ?? mod.Pool)!;
  } catch (err) {
    throw new GeoWatchError("CONFIG", "the postgres geofence state needs the `pg` package: npm i pg", { backend: "spatial", cause: err });
  }
  const pool = new Pool({ connectionString: options.url, max: 4, connectionTimeoutMillis: 10_000 });
  // An idle client that loses its connection emits here; the next query reconnects (and fails loudly if it cannot).
  pool.on("error", (err) => logger?.warn("geofence postgres state: idle connection lost", { error: err.message }));
  try {
    await pool.query(
      `CREATE TABLE IF NOT EXISTS ${quoted} (track text PRIMARY KEY, fences jsonb NOT NULL, x double precision, y double precision, stream text, pos numeric, covered jsonb)`,
    );
  } catch (err) {
    // Two processes creating the table at once: the loser sees a unique violation on the catalog; the table exists.
    if ((err as { code?: string }).code !== "23505") {
      await pool.end().catch(() => undefined);
      throw new GeoWatchError("STORE", `cannot open geofence state ${where}: ${(err as Error).message}`, { backend: "spatial", cause: err, retryable: true });
    }
  }
  const selectSql = `SELECT track, fences, x, y, covered FROM ${quoted} WHERE track = ANY($1::text[])`;
  const upsertSql =
    `INSERT INTO ${quoted} AS s (track, fences, x, y, stream, pos, covered) ` +
    `SELECT * FROM unnest($1::text[], $2::jsonb[], $3::float8[], $4::float8[], $5::text[], $6::numeric[], $7::jsonb[]) ` +
    `ON CONFLICT (track) DO UPDATE SET fences = EXCLUDED.fences, x = EXCLUDED.x, y = EXCLUDED.y, stream = EXCLUDED.stream, pos = EXCLUDED.pos, covered = EXCLUDED.covered ` +
    `WHERE s.stream IS DISTINCT FROM EXCLUDED.stream OR s.pos IS NULL OR EXCLUDED.pos IS NULL OR EXCLUDED.pos >= s.pos`;
  let closed = false;
  const check = (): void => {
    if (closed) throw new GeoWatchError("CLOSED", `geofence state ${where} is closed`, { backend: "spatial" });
  };
  return {
    partitioned: true,
    async get(tracks) {
      check();
      let rows: Array<Record<string, unknown>>;
      try {
        rows = (await pool.query(selectSql, [tracks])).rows;
      } catch (err) {
        throw new GeoWatchError("STORE", `cannot read geofence state ${where}: ${(err as Error).message}`, { backend: "spatial", cause: err, retryable: true });
      }
      const byTrack = new Map<string, TrackState>();
      for (const r of rows) {
        byTrack.set(r.track as string, {
          fences: r.fences as string[],
          x: typeof r.x === "number" ? r.x : NaN,
          y: typeof r.y === "number" ? r.y : NaN,
          covered: coveredOf(r.covered),
        });
      }
      return tracks.map((t) => byTrack.get(t));
    },
    async set(entries) {
      check();
      if (entries.length === 0) return;
      const n = entries.length;
      const tracks = new Array<string>(n), fences = new Array<string>(n), xs = new Array<number | null>(n), ys = new Array<number | null>(n);
      const streams = new Array<string | null>(n), poss = new Array<string | null>(n), covered = new Array<string | null>(n);
      for (let i = 0; i < n; i++) {
        const [t, s] = entries[i]!;
        tracks[i] = t;
        fences[i] = JSON.stringify(s.fences);
        xs[i] = Number.isFinite(s.x) ? s.x : null;
        ys[i] = Number.isFinite(s.y) ? s.y : null;
        const p = onlyPosition(s);
        const off = p === undefined ? undefined : String(p.offset);
        streams[i] = p?.stream ?? null;
        poss[i] = off !== undefined && DIGITS.test(off) ? off : null;
        covered[i] = s.covered === undefined ? null : JSON.stringify(s.covered);
      }
      try {
        await pool.query(upsertSql, [tracks, fences, xs, ys, streams, poss, covered]);
      } catch (err) {
        throw new GeoWatchError("STORE", `cannot write geofence state ${where}: ${(err as Error).message}`, { backend: "spatial", cause: err, retryable: true });
      }
    },
    async delete(track) {
      check();
      await pool.query(`DELETE FROM ${quoted} WHERE track = $1`, [track]);
    },
    async close() {
      if (closed) return;
      closed = true;
      await pool.end();
    },
  };
}
