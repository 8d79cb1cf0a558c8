/**
 * Sources from GeoWatch stores (`sources.<name>` in config, a store node as a broker config spells it:
 * `{ backend: file, path: ./layers }`, `{ backend: wfs, url: ..., version: 2.0.0 }`, `{ backend: s3, ... }`),
 * resolved like the runtime resolves a backend (`@geowatch/<name>`), validated against the backend's store
 * schema with `sources.<name>.*` paths, wrapped by core's runtime layer (connect with retry, refuse after close)
 * and read with the store's `read(key)`. A value becomes rows: a GeoJSON FeatureCollection (or Feature) gives its
 * properties plus a `geometry` column (so GeoJSON and GeoPackage get real geometries), a JSON array of objects
 * or newline-delimited JSON gives one row per object.
 */
import { readFileSync } from "node:fs";
import { resolve } from "node:path";
import { GeoWatchError, Runtime, guardStore, jsonLogger, reasonOf } from "@geowatch/core";
import type { BackendDefinition, Logger, Payload, Store } from "@geowatch/core";
import type { PackagerConfig } from "../config.js";
import type { Field } from "./datastore.js";

/** Node keys the runtime reads itself on a store node; the rest are the backend's options. */
const NODE_ONLY = new Set(["enabled", "name", "backend", "codec", "key", "which", "which_index", "mode", "flush_count", "flush_ms", "poll_ms", "max_tries"]);

export type Importer = (specifier: string) => Promise<Record<string, unknown>>;

export interface OpenedSource {
  name: string;
  backend: string;
  store: Store & { close(): Promise<void> };
}

function problem(path: string, message: string, cause?: unknown): GeoWatchError {
  return new GeoWatchError("CONFIG", `${path}: ${message}`, { backend: "packager", path, ...(cause ? { cause } : {}) });
}

/** Resolves, validates and wraps the store of `sources.<name>`; nothing connects before the first read. */
export async function openSource(config: PackagerConfig, name: string, opts: { logger?: Logger; importer?: Importer } = {}): Promise<OpenedSource> {
  const node = config.sources[name];
  const path = `sources.${name}`;
  if (!node) throw new GeoWatchError("VALIDATE", `unknown source "${name}" (configured: ${Object.keys(config.sources).join(", ") || "none"})`);
  if (typeof node.backend !== "string" || node.backend === "") throw problem(`${path}.backend`, "must name a GeoWatch backend (file, s3, wfs, ...)");
  const logger = opts.logger ?? jsonLogger({ level: config.logLevel });
  const runtime = new Runtime({ logger, importer: opts.importer ?? ((s: string) => import(s) as Promise<Record<string, unknown>>) });
  let def: BackendDefinition;
  try {
    def = await runtime.resolveBackend(node.backend);
  } catch (err) {
    const pkg = node.backend.startsWith("@") || node.backend.includes("/") ? node.backend : `@geowatch/${node.backend}`;
    throw problem(`${path}.backend`, `${reasonOf(err)}. Install it beside the packager: npm install ${pkg}`, err);
  }
  if (!def.store) throw problem(`${path}.backend`, `backend "${def.name}" has no store role: it cannot be read as a source`);
  const raw: Record<string, unknown> = {};
  for (const [k, v] of Object.entries(node)) if (!NODE_ONLY.has(k) && k !== "options") raw[k] = v;
  if (node.options && typeof node.options === "object" && !Array.isArray(node.options)) Object.assign(raw, node.options);
  const parsed = def.store.parse(raw, { role: "store" }, { baseDir: config.configDir });
  if (!parsed.ok) {
    const all = parsed.problems.map((p) => `${path}.${p.path}: ${p.message}`);
    throw new GeoWatchError("CONFIG", all.join("; "), { backend: "packager", path: `${path}.${parsed.problems[0]?.path ?? ""}` });
  }
  const created = def.store.create(parsed.options, {
    name: path,
    logger,
    baseDir: config.configDir,
    secret: (ref) => (ref.startsWith("file:") ? readFileSync(resolve(config.configDir, ref.slice(5)), "utf8").trim() : process.env[ref]),
  });
  if (!created.read) throw problem(`${path}.backend`, `the store of backend "${def.name}" cannot read`);
  const store = guardStore(created, { name: path, backend: def.name, logger, connectTries: typeof node.max_tries === "number" ? node.max_tries : 5 });
  return { name, backend: def.name, store };
}

const PAGE = 5000;

/** Reads `key` from the source and yields its rows in pages, fields first seen first. */
export async function* sourcePages(src: OpenedSource, key: string): AsyncGenerator<{ fields: Field[]; rows: unknown[][]; total: number }> {
  const payload = await src.store.read!(key);
  if (payload === undefined) throw new GeoWatchError("FETCH", `source "${src.name}" has no key "${key}"`);
  const items = toObjects(payload, `${src.name}:${key}`);
  const ids: string[] = [];
  const seen = new Set<string>();
  for (const o of items) {
    for (const k of Object.keys(o)) {
      if (!seen.has(k)) {
        seen.add(k);
        ids.push(k);
      }
    }
  }
  const fields: Field[] = ids.map((id) => ({ id, type: id === "geometry" ? "geometry" : "text" }));
  if (items.length === 0) {
    yield { fields, rows: [], total: 0 };
    return;
  }
  for (let i = 0; i < items.length; i += PAGE) {
    yield { fields, rows: items.slice(i, i + PAGE).map((o) => ids.map((k) => o[k] ?? null)), total: items.length };
  }
}

function text(p: Payload): string {
  return typeof p === "string" ? p : Buffer.from(p.buffer, p.byteOffset, p.byteLength).toString("utf8");
}

/** Objects of a value: a FeatureCollection's features (properties plus `geometry`, and `id`), an array, NDJSON. */
export function toObjects(payload: Payload, what: string): Record<string, unknown>[] {
  const t = text(payload).trim();
  if (t === "") return [];
  let values: unknown[];
  try {
    values = [JSON.parse(t)];
  } catch {
    try {
      values = t
        .split("\n")
        .filter((l) => l.trim() !== "")
        .map((l) => JSON.parse(l) as unknown);
    } catch (err) {
      throw new GeoWatchError("DECODE", `${what} is neither JSON nor newline-delimited JSON: ${reasonOf(err)}`);
    }
  }
  const out: Record<string, unknown>[] = [];
  const add = (v: unknown): void => {
    if (Array.isArray(v)) {
      v.forEach(add);
      return;
    }
    if (v === null || typeof v !== "object") throw new GeoWatchError("DECODE", `${what}: a value is not an object (${JSON.stringify(v)?.slice(0, 60)})`);
    const o = v as Record<string, unknown>;
    if (o.type === "FeatureCollection" && Array.isArray(o.features)) {
      o.features.forEach(add);
      return;
    }
    if (o.type === "Feature") {
      const props = (o.properties && typeof o.properties === "object" ? o.properties : {}) as Record<string, unknown>;
      out.push({ ...(o.id !== undefined && !("id" in props) ? { id: o.id } : {}), ...props, geometry: o.geometry ?? null });
      return;
    }
    // A GeoWatch envelope ({ metadata, data }) carries its row in data.
    if ("data" in o && "metadata" in o && Object.keys(o).length === 2) {
      add(o.data);
      return;
    }
    out.push(o);
  };
  values.forEach(add);
  return out;
}
