/** Subscriptions on node:sqlite: who gets which events, through which channel. */
import { mkdirSync } from "node:fs";
import { dirname } from "node:path";
import { DatabaseSync } from "node:sqlite";
import { GeoWatchError } from "@geowatch/core";
import { geometryProblem } from "@geowatch/spatial";

/** Where a subscription listens: a fence by name (from the stage's fence file) or an inline polygon. */
export type Area = { fence: string } | { polygon: { type: "Polygon" | "MultiPolygon"; coordinates: unknown } };

/** What a user subscribes to; an empty list (or no area) matches everything. */
export interface SubscriptionInput {
  user: string;
  /** `email`, `feed`, `slack`, or any sink kind the stage's `routes` names. */
  channel: string;
  /** Where the channel delivers: an email address, a Slack channel, a feed name. Default: the user. */
  address?: string;
  actiontypes?: string[];
  targettypes?: string[];
  /** Layers (`featuretype`, e.g. `topp:states`). */
  featuretypes?: string[];
  area?: Area;
}

export interface Subscription extends Required<Omit<SubscriptionInput, "area">> {
  id: number;
  area?: Area;
  created: string;
}

export interface SubscriptionStore {
  add(s: SubscriptionInput): Subscription;
  /** True when it existed. */
  remove(id: number): boolean;
  list(filter?: { user?: string }): Subscription[];
  /** Changes whenever any connection changed the database (SQLite's data_version plus our own writes). */
  version(): string;
  close(): void;
}

const SCHEMA = `
CREATE TABLE IF NOT EXISTS subscriptions (
  id INTEGER PRIMARY KEY AUTOINCREMENT,
  user TEXT NOT NULL,
  channel TEXT NOT NULL,
  address TEXT NOT NULL,
  actiontypes TEXT NOT NULL,
  targettypes TEXT NOT NULL,
  featuretypes TEXT NOT NULL,
  area TEXT,
  created TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS subscriptions_user ON subscriptions (user);
`;

const NAME = /^[A-Za-z][A-Za-z0-9_-]*$/;

function bad(message: string, path: string): never {
  throw new GeoWatchError("VALIDATE", message, { backend: "subscriptions", path });
}

const strings = (v: unknown, path: string): string[] => {
  if (v === undefined) return [];
  if (!Array.isArray(v) || !v.every((s) => typeof s === "string" && s.length > 0)) bad(`${path} must be a list of non-empty strings`, path);
  return [...new Set(v as string[])];
};

/** Every rule a subscription must meet, checked before it is stored. */
export function validateSubscription(s: SubscriptionInput): Omit<Subscription, "id" | "created"> {
  if (typeof s.user !== "string" || s.user.trim() === "") bad("user is required", "user");
  if (typeof s.channel !== "string" || !NAME.test(s.channel)) bad(`channel must be a name such as email, feed or slack (got ${JSON.stringify(s.channel)})`, "channel");
  const address = s.address ?? s.user;
  if (typeof address !== "string" || address.trim() === "") bad("address must be a non-empty string", "address");
  if (s.channel === "email" && !/^[^\s@]+@[^\s@]+$/.test(address)) bad(`address ${JSON.stringify(address)} is not an email address`, "address");
  const out: Omit<Subscription, "id" | "created"> = {
    user: s.user,
    channel: s.channel,
    address,
    actiontypes: strings(s.actiontypes, "actiontypes"),
    targettypes: strings(s.targettypes, "targettypes"),
    featuretypes: strings(s.featuretypes, "featuretypes"),
  };
  if (s.area !== undefined) {
    const a = s.area as Record<string, unknown>;
    if (typeof a.fence === "string" && a.fence !== "" && Object.keys(a).length === 1) out.area = { fence: a.fence };
    else if (a.polygon !== undefined && Object.keys(a).length === 1) {
      const g = a.polygon as { type?: unknown };
      if (g === null || typeof g !== "object" || (g.type !== "Polygon" && g.type !== "MultiPolygon")) bad("area.polygon must be a GeoJSON Polygon or MultiPolygon", "area.polygon");
      const p = geometryProblem(g, "area.polygon");
      if (p) bad(`${p.path}: ${p.message}`, p.path);
      out.area = { polygon: g as { type: "Polygon" | "MultiPolygon"; coordinates: unknown } };
    } else bad("area must be { fence: name } or { polygon: GeoJSON Polygon }", "area");
  }
  return out;
}

interface Row {
  id: number;
  user: string;
  channel: string;
  address: string;
  actiontypes: string;
  targettypes: string;
  featuretypes: string;
  area: string | null;
  created: string;
}

const fromRow = (r: Row): Subscription => {
  const s: Subscription = {
    id: r.id,
    user: r.user,
    channel: r.channel,
    address: r.address,
    actiontypes: JSON.parse(r.actiontypes) as string[],
    targettypes: JSON.parse(r.targettypes) as string[],
    featuretypes: JSON.parse(r.featuretypes) as string[],
    created: r.created,
  };
  if (r.area !== null) s.area = JSON.parse(r.area) as Area;
  return s;
};

/** Opens (and creates) a subscription database. */
export function openSubscriptionStore(file: string): SubscriptionStore {
  if (file !== ":memory:") mkdirSync(dirname(file), { recursive: true });
  const db = new DatabaseSync(file, { timeout: 5000 });
  db.exec("PRAGMA journal_mode = WAL;");
  db.exec(SCHEMA);
  const insert = db.prepare(
    "INSERT INTO subscriptions (user, channel, address, actiontypes, targettypes, featuretypes, area, created) VALUES (?, ?, ?, ?, ?, ?, ?, ?) RETURNING *",
  );
  const del = db.prepare("DELETE FROM subscriptions WHERE id = ?");
  const all = db.prepare("SELECT * FROM subscriptions ORDER BY id");
  const byUser = db.prepare("SELECT * FROM subscriptions WHERE user = ? ORDER BY id");
  const dataVersion = db.prepare("PRAGMA data_version");
  let own = 0;
  return {
    add(input) {
      const s = validateSubscription(input);
      const row = insert.get(s.user, s.channel, s.address, JSON.stringify(s.actiontypes), JSON.stringify(s.targettypes), JSON.stringify(s.featuretypes), s.area ? JSON.stringify(s.area) : null, new Date().toISOString()) as unknown as Row;
      own++;
      return fromRow(row);
    },
    remove(id) {
      const n = Number(del.run(id).changes);
      own++;
      return n > 0;
    },
    list(filter = {}) {
      const rows = (filter.user === undefined ? all.all() : byUser.all(filter.user)) as unknown as Row[];
      return rows.map(fromRow);
    },
    version() {
      // data_version moves when another connection commits; our own commits we count ourselves.
      return `${(dataVersion.get() as { data_version: number }).data_version}.${own}`;
    },
    close() {
      if (db.isOpen) db.close();
    },
  };
}
