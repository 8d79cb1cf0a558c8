/** The few calls the shared SQL storage needs from an engine: `?` placeholders, rows as plain objects. */
export interface SqlDb {
  readonly dialect: "sqlite" | "postgres";
  all<T = Record<string, unknown>>(sql: string, params?: unknown[]): Promise<T[]>;
  run(sql: string, params?: unknown[]): Promise<{ changes: number }>;
  /**
   * Runs one statement once per parameter list, prepared once, synchronously: the first row of each run (or
   * undefined). Engines with an in-process driver (SQLite) offer it for bulk writes; others leave it out.
   */
  many?<T = Record<string, unknown>>(sql: string, rows: unknown[][]): (T | undefined)[];
  /** Runs `fn` in one transaction on one connection; rolls back when it throws. */
  tx<T>(fn: (db: SqlDb) => Promise<T>): Promise<T>;
  close(): Promise<void>;
}

/** The engine-specific SQL fragments of a search. */
export interface Dialect {
  /** A join that restricts to text matches and exposes `score` (higher is better), or a where clause. */
  text(query: string): { join?: string; where?: string; score: string; params: unknown[]; scoreParams?: unknown[] };
  /** Candidate rows whose bbox intersects [minx, miny, maxx, maxy] (and time overlaps, where the index has time); index-backed, may be loose. */
  bbox(b: [number, number, number, number], time?: { from?: number; to?: number }): { where: string; params: unknown[] };
  floorInt(expr: string): string;
  /** Words to a prefix query in the engine's own syntax; undefined when nothing searchable is left. */
  textQuery(text: string): string | undefined;
}

/** Words of a free-text query: letters and digits only, so no engine query syntax gets through. */
export function words(text: string): string[] {
  return (text.toLowerCase().match(/[\p{L}\p{N}_]+/gu) ?? []).slice(0, 16);
}
