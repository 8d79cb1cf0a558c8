import { randomBytes } from "node:crypto";
import { mkdtempSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { requireEnv } from "@geowatch/testkit";
import pg from "pg";
import { postgresStorage, sqliteStorage } from "../src/index.js";
import type { RegistryStorage } from "../src/index.js";

export const PG_HINT = "Start the shared PostgreSQL + PostGIS cluster: bash .ci/servers/postgres.sh start && source .servers/env/postgres.env";

/** A fresh database of the engine: a temp SQLite file, or a new PostgreSQL database dropped by `drop`. */
export async function freshStorage(engine: "sqlite" | "postgres"): Promise<{ storage: RegistryStorage; drop(): Promise<void>; url?: string; path?: string }> {
  if (engine === "sqlite") {
    const path = join(mkdtempSync(join(tmpdir(), "registry-")), "registry.db");
    const storage = sqliteStorage(path);
    await storage.init();
    return { storage, path, drop: () => storage.close() };
  }
  const base = requireEnv("GEOWATCH_PG_URL", PG_HINT);
  const name = `registry_${randomBytes(5).toString("hex")}`;
  const admin = new pg.Client({ connectionString: base });
  await admin.connect();
  await admin.query(`CREATE DATABASE ${name}`);
  await admin.end();
  const url = base.replace(/\/[^/]*$/, `/${name}`);
  const storage = postgresStorage(url);
  await storage.init();
  return {
    storage,
    url,
    async drop() {
      await storage.close();
      const a = new pg.Client({ connectionString: base });
      await a.connect();
      await a.query(`DROP DATABASE IF EXISTS ${name} WITH (FORCE)`);
      await a.end();
    },
  };
}
