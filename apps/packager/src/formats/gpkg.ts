/**
 * A GeoPackage (OGC 12-128r18) written with node:sqlite into a temp file, then added to the ZIP: one feature
 * table named after the resource, geometry in SRS 4326 (GeoJSON columns or latitude/longitude pairs), the
 * other columns as INTEGER, REAL or TEXT. GDAL's ogrinfo opens it.
 */
import { rm } from "node:fs/promises";
import { join } from "node:path";
import { DatabaseSync } from "node:sqlite";
import type { StatementSync } from "node:sqlite";
import type { Field } from "../sources/datastore.js";
import { geometrySource, gpkgBlob } from "./geometry.js";
import type { GeometrySource } from "./geometry.js";
import { visibleFields } from "./types.js";
import type { RowWriter, WriterContext } from "./types.js";

const INT = /^(int|int2|int4|int8|integer|bigint|smallint|serial)$/i;
const REAL = /^(float|float4|float8|numeric|double precision|real|number)$/i;
const BOOL = /^(bool|boolean)$/i;

const ident = (s: string) => `"${s.replace(/"/g, '""')}"`;

export function gpkgWriter(ctx: WriterContext): RowWriter {
  const path = join(ctx.tempDir, `${ctx.name}-${process.pid}-${Date.now()}.gpkg`);
  const table = ctx.name.replace(/[^A-Za-z0-9_]/g, "_").replace(/^(\d)/, "_$1");
  let db: DatabaseSync | undefined;
  let insert: StatementSync | undefined;
  let geo: GeometrySource | undefined;
  let cols: { i: number; type: "INTEGER" | "REAL" | "TEXT" }[] = [];
  const env: [number, number, number, number] = [Infinity, -Infinity, Infinity, -Infinity];

  const value = (v: unknown, type: string): string | number | bigint | null => {
    if (v === null || v === undefined) return null;
    if (type === "INTEGER" || type === "REAL") {
      const n = typeof v === "number" ? v : typeof v === "boolean" ? Number(v) : Number(v);
      return Number.isFinite(n) ? n : String(v);
    }
    return typeof v === "object" ? JSON.stringify(v) : String(v);
  };

  return {
    async begin(fields: Field[]) {
      geo = geometrySource(fields);
      const skip = new Set(geo?.columns ?? []);
      cols = visibleFields(fields)
        .filter((i) => !skip.has(i) && fields[i]!.id.toLowerCase() !== "fid")
        .map((i) => {
          const t = fields[i]!.type;
          return { i, type: INT.test(t) || BOOL.test(t) ? "INTEGER" : REAL.test(t) ? "REAL" : "TEXT" };
        });
      db = new DatabaseSync(path);
      db.exec(`
        PRAGMA application_id = 1196444487;
        PRAGMA user_version = 10400;
        PRAGMA journal_mode = OFF;
        PRAGMA synchronous = OFF;
        CREATE TABLE gpkg_spatial_ref_sys (srs_name TEXT NOT NULL, srs_id INTEGER PRIMARY KEY, organization TEXT NOT NULL,
          organization_coordsys_id INTEGER NOT NULL, definition TEXT NOT NULL, description TEXT);
        INSERT INTO gpkg_spatial_ref_sys VALUES ('Undefined cartesian SRS', -1, 'NONE', -1, 'undefined', 'undefined cartesian coordinate reference system');
        INSERT INTO gpkg_spatial_ref_sys VALUES ('Undefined geographic SRS', 0, 'NONE', 0, 'undefined', 'undefined geographic coordinate reference system');
        INSERT INTO gpkg_spatial_ref_sys VALUES ('WGS 84 geodetic', 4326, 'EPSG', 4326,
          'GEOGCS["WGS 84",DATUM["WGS_1984",SPHEROID["WGS 84",6378137,298.257223563,AUTHORITY["EPSG","7030"]],AUTHORITY["EPSG","6326"]],PRIMEM["Greenwich",0,AUTHORITY["EPSG","8901"]],UNIT["degree",0.0174532925199433,AUTHORITY["EPSG","9122"]],AXIS["Latitude",NORTH],AXIS["Longitude",EAST],AUTHORITY["EPSG","4326"]]',
          'longitude/latitude coordinates in decimal degrees on the WGS 84 spheroid');
        CREATE TABLE gpkg_contents (table_name TEXT NOT NULL PRIMARY KEY, data_type TEXT NOT NULL, identifier TEXT UNIQUE, description TEXT DEFAULT '',
          last_change DATETIME NOT NULL DEFAULT (strftime('%Y-%m-%dT%H:%M:%fZ','now')), min_x DOUBLE, min_y DOUBLE, max_x DOUBLE, max_y DOUBLE,
          srs_id INTEGER, CONSTRAINT fk_gc_r_srs_id FOREIGN KEY (srs_id) REFERENCES gpkg_spatial_ref_sys(srs_id));
        CREATE TABLE gpkg_geometry_columns (table_name TEXT NOT NULL, column_name TEXT NOT NULL, geometry_type_name TEXT NOT NULL, srs_id INTEGER NOT NULL,
          z TINYINT NOT NULL, m TINYINT NOT NULL, CONSTRAINT pk_geom_cols PRIMARY KEY (table_name, column_name),
          CONSTRAINT fk_gc_tn FOREIGN KEY (table_name) REFERENCES gpkg_contents(table_name),
          CONSTRAINT fk_gc_srs FOREIGN KEY (srs_id) REFERENCES gpkg_spatial_ref_sys (srs_id));
      `);
      const colDefs = cols.map((c) => `${ident(fields[c.i]!.id)} ${c.type}`).join(", ");
      db.exec(`CREATE TABLE ${ident(table)} (fid INTEGER PRIMARY KEY AUTOINCREMENT, geom ${geo?.kind ?? "GEOMETRY"}${colDefs ? `, ${colDefs}` : ""})`);
      db.prepare("INSERT INTO gpkg_contents (table_name, data_type, identifier, srs_id) VALUES (?, 'features', ?, 4326)").run(table, ctx.name);
      db.prepare("INSERT INTO gpkg_geometry_columns VALUES (?, 'geom', ?, 4326, 0, 0)").run(table, geo?.kind ?? "GEOMETRY");
      insert = db.prepare(`INSERT INTO ${ident(table)} (geom${cols.map((c) => `, ${ident(fields[c.i]!.id)}`).join("")}) VALUES (?${", ?".repeat(cols.length)})`);
    },
    async write(rows) {
      db!.exec("BEGIN");
      try {
        for (const row of rows) {
          const g = geo?.read(row) ?? null;
          let blob: Buffer | null = null;
          if (g) {
            try {
              const b = gpkgBlob(g);
              blob = b.blob;
              if (b.env[0] < env[0]) env[0] = b.env[0];
              if (b.env[1] > env[1]) env[1] = b.env[1];
              if (b.env[2] < env[2]) env[2] = b.env[2];
              if (b.env[3] > env[3]) env[3] = b.env[3];
            } catch {
              blob = null;
            }
          }
          insert!.run(blob, ...cols.map((c) => value(row[c.i], c.type)));
        }
        db!.exec("COMMIT");
      } catch (err) {
        db!.exec("ROLLBACK");
        throw err;
      }
    },
    async end() {
      if (env[0] <= env[1]) {
        db!.prepare("UPDATE gpkg_contents SET min_x = ?, max_x = ?, min_y = ?, max_y = ? WHERE table_name = ?").run(env[0], env[1], env[2], env[3], table);
      }
      db!.close();
      db = undefined;
      ctx.zip.file(path, `${ctx.name}.gpkg`);
      ctx.cleanup?.push(path);
    },
    async abort() {
      db?.close();
      await rm(path, { force: true });
    },
  };
}
