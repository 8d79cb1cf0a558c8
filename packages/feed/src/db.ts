/** The entries on node:sqlite: one row per (user, entry id), the last N per user. */
import { mkdirSync } from "node:fs";
import { dirname } from "node:path";
import { DatabaseSync } from "node:sqlite";

/** Where an entry sits on a map, as GeoRSS says it (WGS84 lon/lat pairs). */
export type EntryGeo =
  | { type: "point"; coordinates: [number, number] }
  | { type: "line"; coordinates: Array<[number, number]> }
  | { type: "polygon"; coordinates: Array<[number, number]> }
  | { type: "box"; bbox: [number, number, number, number] };

/** One feed entry. */
export interface FeedEntry {
  /** Unique per user: the message id (a redelivered message replaces nothing and adds nothing). */
  id: string;
  user: string;
  title: string;
  /** ISO 8601. */
  updated: string;
  link?: string;
  summary?: string;
  /** The message text. */
  content: string;
  geo?: EntryGeo;
  categories?: string[];
}

/** An entry as stored, with the order it arrived in. */
export interface StoredEntry extends FeedEntry {
  seq: number;
}

export interface FeedDb {
  /** Adds entries that are not there yet (by user and id) and drops each touched user's oldest beyond `maxEntries`; returns how many were new. */
  add(entries: FeedEntry[], maxEntries: number): number;
  /** A user's newest entries first. */
  entries(user: string, limit: number): StoredEntry[];
  /** Changes whenever the user's entries change (newest seq and count), without reading them. */
  version(user: string): string;
  close(): void;
}

const SCHEMA = `
CREATE TABLE IF NOT EXISTS feed_entries (
  seq INTEGER PRIMARY KEY AUTOINCREMENT,
  user TEXT NOT NULL,
  id TEXT NOT NULL,
  body TEXT NOT NULL,
  UNIQUE (user, id)
);
CREATE INDEX IF NOT EXISTS feed_entries_user_seq ON feed_entries (user, seq);
CREATE TABLE IF NOT EXISTS feed_users (
  user TEXT PRIMARY KEY,
  n INTEGER NOT NULL,
  top INTEGER NOT NULL
);
`;

/** Opens (and creates) the feed database. A server beside the writing producer opens it too: WAL lets its reads run beside the writes. */
export function openFeedDb(file: string): FeedDb {
  if (file !== ":memory:") mkdirSync(dirname(file), { recursive: true });
  const db = new DatabaseSync(file, { timeout: 5000 });
  db.exec("PRAGMA journal_mode = WAL; PRAGMA synchronous = FULL;");
  db.exec(SCHEMA);
  // Per-user entry count and newest seq, kept with every write: pruning and the server's change check then
  // cost what they touch, not the size of the feed.
  if ((db.prepare("SELECT count(*) AS n FROM feed_users").get() as { n: number }).n === 0) {
    db.exec("INSERT OR IGNORE INTO feed_users (user, n, top) SELECT user, count(*), max(seq) FROM feed_entries GROUP BY user");
  }
  const insert = db.prepare("INSERT OR IGNORE INTO feed_entries (user, id, body) VALUES (?, ?, ?)");
  const bump = db.prepare("INSERT INTO feed_users (user, n, top) VALUES (?, ?, ?) ON CONFLICT (user) DO UPDATE SET n = n + excluded.n, top = excluded.top RETURNING n");
  const prune = db.prepare("DELETE FROM feed_entries WHERE seq IN (SELECT seq FROM feed_entries WHERE user = ? ORDER BY seq LIMIT ?)");
  const setCount = db.prepare("UPDATE feed_users SET n = ? WHERE user = ?");
  const select = db.prepare("SELECT seq, id, body FROM feed_entries WHERE user = ? ORDER BY seq DESC LIMIT ?");
  const stamp = db.prepare("SELECT n, top FROM feed_users WHERE user = ?");
  return {
    add(entries, maxEntries) {
      let added = 0;
      const touched = new Map<string, { added: number; top: number }>();
      db.exec("BEGIN IMMEDIATE");
      try {
        for (const e of entries) {
          const { user, id, ...rest } = e;
          const r = insert.run(user, id, JSON.stringify(rest));
          if (Number(r.changes) === 0) continue;
          added++;
          const t = touched.get(user);
          if (t) {
            t.added++;
            t.top = Number(r.lastInsertRowid);
          } else touched.set(user, { added: 1, top: Number(r.lastInsertRowid) });
        }
        for (const [user, t] of touched) {
          const n = (bump.get(user, t.added, t.top) as { n: number }).n;
          if (n <= maxEntries) continue;
          prune.run(user, n - maxEntries);
          setCount.run(maxEntries, user);
        }
        db.exec("COMMIT");
      } catch (err) {
        db.exec("ROLLBACK");
        throw err;
      }
      return added;
    },
    entries(user, limit) {
      const rows = select.all(user, limit) as Array<{ seq: number; id: string; body: string }>;
      return rows.map((r) => ({ ...(JSON.parse(r.body) as Omit<FeedEntry, "user" | "id">), user, id: r.id, seq: r.seq }));
    },
    version(user) {
      const r = stamp.get(user) as { top: number; n: number } | undefined;
      return r ? `${r.top}.${r.n}` : "0.0";
    },
    close() {
      if (db.isOpen) db.close();
    },
  };
}
