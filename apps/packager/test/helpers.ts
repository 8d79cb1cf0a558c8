/** Test helpers: the real CKAN (.ci/servers/ckan.sh), the real SMTP server's Maildir (.ci/servers/smtp.sh), readers. */
import { execFileSync } from "node:child_process";
import { mkdtempSync, readdirSync, readFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { requireEnv } from "@geowatch/testkit";
import pg from "pg";
import { resolveConfig } from "../src/config.js";
import type { PackagerConfig, PackagerConfigInput } from "../src/config.js";

const CKAN_HINT = "Start CKAN: bash .ci/servers/ckan.sh start (after bash .ci/servers/postgres.sh start), then source .servers/env/ckan.env";
const PG_HINT = "Start PostgreSQL: bash .ci/servers/postgres.sh start, then source .servers/env/postgres.env";
const SMTP_HINT = "Start the SMTP server: bash .ci/servers/smtp.sh start, then source .servers/env/smtp.env";

export const ckanUrl = () => requireEnv("GEOWATCH_CKAN_URL", CKAN_HINT);
export const ckanToken = () => requireEnv("GEOWATCH_CKAN_TOKEN", CKAN_HINT);
export const python = () => requireEnv("GEOWATCH_CKAN_PYTHON", CKAN_HINT);
export const searchUrl = () => `${ckanUrl()}/api/3/action/datastore_search`;

export async function ckan<T = Record<string, unknown>>(action: string, body: Record<string, unknown>): Promise<T> {
  const res = await fetch(`${ckanUrl()}/api/3/action/${action}`, {
    method: "POST",
    headers: { "content-type": "application/json", authorization: ckanToken() },
    body: JSON.stringify(body),
  });
  const json = (await res.json()) as { success: boolean; result: T; error?: unknown };
  if (!json.success) throw new Error(`${action} failed: ${JSON.stringify(json.error)}`);
  return json.result;
}

export const FIELDS = [
  { id: "name", type: "text" },
  { id: "count", type: "int" },
  { id: "latitude", type: "float" },
  { id: "longitude", type: "float" },
  { id: "Scientific name", type: "text" },
  { id: "Catalog number", type: "text" },
  { id: "Habitat type", type: "text" },
  { id: "associatedMedia", type: "text" },
  { id: "notes", type: "text" },
];

/** Row i of the test resource: awkward text (commas, quotes, a line break, a tab, non-ASCII) on some rows. */
export function row(i: number): Record<string, unknown> {
  return {
    name: `site ${i}`,
    count: i,
    latitude: -45 + (i % 90),
    longitude: -170 + (i % 340),
    "Scientific name": i % 2 ? "Parus major" : "Turdus merula",
    "Catalog number": `CAT-${i}`,
    "Habitat type": i % 3 ? "forest" : "wetland",
    associatedMedia: i % 10 === 0 ? JSON.stringify([{ identifier: `http://img.example.org/${i}.jpg`, title: `image ${i}` }]) : null,
    notes: i % 7 === 0 ? `comma, "quote"\nline two\ttab ü ${i}` : `plain ${i}`,
  };
}

/** A dataset with one DataStore resource of `n` rows (rows 0..n-1); returns the resource id. */
export async function makeResource(n: number, name = `gw-packager-${Date.now()}-${Math.floor(Math.random() * 1e6)}`): Promise<string> {
  await ckan("organization_create", { name: "geowatch-packager-tests" }).catch(() => undefined);
  const pkg = await ckan<{ id: string }>("package_create", { name, owner_org: "geowatch-packager-tests" });
  const first = await ckan<{ resource_id: string }>("datastore_create", {
    resource: { package_id: pkg.id, name: "observations" },
    fields: FIELDS,
    records: Array.from({ length: Math.min(n, 1000) }, (_, i) => row(i)),
  });
  for (let s = 1000; s < n; s += 1000) {
    await ckan("datastore_upsert", {
      resource_id: first.resource_id,
      method: "insert",
      records: Array.from({ length: Math.min(1000, n - s) }, (_, k) => row(s + k)),
    });
  }
  return first.resource_id;
}

/** The engines of the packager's state every state test runs on. */
export const STATE_ENGINES = ["sqlite", "postgres"] as const;
export type StateEngine = (typeof STATE_ENGINES)[number];

/** The shared PostgreSQL cluster (.ci/servers/postgres.sh), as its admin URL. */
export const pgAdminUrl = () => requireEnv("GEOWATCH_PG_URL", PG_HINT);

/** A database of its own on the shared cluster for one test run; `drop` removes it (connections included). */
export async function createPgDatabase(prefix = "gw_packager"): Promise<{ url: string; name: string; drop(): Promise<void> }> {
  const name = `${prefix}_${process.pid}_${Date.now().toString(36)}_${Math.floor(Math.random() * 1e6)}`;
  const admin = new pg.Client({ connectionString: pgAdminUrl() });
  await admin.connect();
  try {
    await admin.query(`CREATE DATABASE ${name}`);
  } finally {
    await admin.end();
  }
  const u = new URL(pgAdminUrl());
  u.pathname = `/${name}`;
  return {
    url: u.toString(),
    name,
    async drop() {
      const c = new pg.Client({ connectionString: pgAdminUrl() });
      await c.connect();
      try {
        await c.query(`DROP DATABASE IF EXISTS ${name} WITH (FORCE)`);
      } finally {
        await c.end();
      }
    },
  };
}

/** The `state` config of an engine: none (node:sqlite under data_dir), or the given PostgreSQL database. */
export function stateFor(engine: StateEngine, pgUrl: string | undefined): PackagerConfigInput {
  if (engine === "sqlite") return {};
  if (!pgUrl) throw new Error("no PostgreSQL database for the postgres engine");
  return { state: { engine: "postgres", url: pgUrl } };
}

export interface SmtpEnv {
  host: string;
  port: number;
  user: string;
  passwordFile: string;
  ca: string;
  maildir: string;
}

export function smtpEnv(): SmtpEnv {
  return {
    host: requireEnv("GEOWATCH_SMTP_HOST", SMTP_HINT),
    port: Number(requireEnv("GEOWATCH_SMTP_PORT", SMTP_HINT)),
    user: requireEnv("GEOWATCH_SMTP_USER", SMTP_HINT),
    passwordFile: requireEnv("GEOWATCH_SMTP_PASSWORD_FILE", SMTP_HINT),
    ca: requireEnv("GEOWATCH_SMTP_CA", SMTP_HINT),
    maildir: requireEnv("GEOWATCH_SMTP_MAILDIR", SMTP_HINT),
  };
}

/** A config for tests: its own data dir, a free port, the real SMTP server, 127.0.0.1 allowed. */
export function testConfig(extra: PackagerConfigInput = {}): PackagerConfig {
  const s = smtpEnv();
  return resolveConfig({
    host: "127.0.0.1",
    port: 0,
    secret: "test-secret-0123456789",
    dataDir: mkdtempSync(join(tmpdir(), "gw-packager-")),
    allowHosts: ["127.0.0.1"],
    logLevel: "warn",
    pageSize: 500,
    email: { host: s.host, port: s.port, user: s.user, passwordFile: s.passwordFile, ca: s.ca, from: "Data Portal <portal@example.org>" },
    ...extra,
  });
}

export interface ReadMail {
  to: string;
  from: string;
  subject: string;
  body: string;
}

/** Mails in the Maildir addressed to `to` (decoded by Python's email package, an independent parser). */
export function mailsTo(to: string): ReadMail[] {
  const dir = join(smtpEnv().maildir, "new");
  const out: ReadMail[] = [];
  for (const f of readdirSync(dir)) {
    const raw = readFileSync(join(dir, f), "utf8");
    if (!raw.includes(to)) continue;
    const json = execFileSync(python(), ["-c", PY_MAIL, join(dir, f)], { encoding: "utf8" });
    const m = JSON.parse(json) as ReadMail;
    if (m.to.includes(to)) out.push(m);
  }
  return out;
}

const PY_MAIL = `
import email, json, sys
from email import policy
m = email.message_from_binary_file(open(sys.argv[1], 'rb'), policy=policy.default)
body = m.get_body(preferencelist=('plain',))
print(json.dumps({'to': str(m['To']), 'from': str(m['From']), 'subject': str(m['Subject']), 'body': body.get_content() if body else ''}))
`;

export async function waitFor<T>(what: string, fn: () => T | undefined | Promise<T | undefined>, timeoutMs = 60_000): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const v = await fn();
    if (v !== undefined && v !== null && v !== false) return v as T;
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 200));
  }
}

/** Runs a Python script (the CKAN venv: openpyxl, zipfile, csv) and parses its JSON output. */
export function py<T>(script: string, ...args: string[]): T {
  return JSON.parse(execFileSync(python(), ["-c", script, ...args], { encoding: "utf8", maxBuffer: 64 << 20 })) as T;
}

export async function post(base: string, path: string, body: Record<string, unknown> | string, contentType = "application/json"): Promise<{ status: number; body: Record<string, unknown> }> {
  const res = await fetch(`${base}${path}`, { method: "POST", headers: { "content-type": contentType }, body: typeof body === "string" ? body : JSON.stringify(body) });
  return { status: res.status, body: (await res.json()) as Record<string, unknown> };
}
