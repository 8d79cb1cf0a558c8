/**
 * OGC API Features Part 4 writer: POST (create), PUT (replace) and DELETE on `/collections/{id}/items`,
 * one request per edit, in order. With `idProperty` each edit first looks its stable id up
 * (`items?<id_property>=<id>`), so a create of an existing id replaces it and a replayed delete is a no-op.
 */
import { GeoWatchError } from "@geowatch/core";
import type { Feature } from "./gml-common.js";
import { BACKEND, excerpt, type WfsHttp, type WfsResponse } from "./http.js";
import type { WfsProducerOptions } from "./options.js";
import type { Edit, EditResult, EditWriter } from "./producer.js";

const GEOJSON = "application/geo+json";

function failed(message: string, retryable: boolean): EditResult {
  return { ok: false, error: new GeoWatchError("SEND", message, { backend: BACKEND, retryable }), retryable };
}

/** The result of a write: 2xx ok; 5xx retryable; 401/403 throw (credentials, not the record); other 4xx rejected with the server's text. */
function outcome(res: WfsResponse, what: string, id?: string): EditResult {
  if (res.status >= 200 && res.status < 300) return id !== undefined ? { ok: true, id } : { ok: true };
  if (res.status === 401 || res.status === 403) {
    throw new GeoWatchError("AUTH", `${what} refused: HTTP ${res.status} (check the credentials): ${excerpt(res.text)}`, { backend: BACKEND });
  }
  if (res.status === 502 || res.status === 503 || res.status === 504) {
    throw new GeoWatchError("CONNECT", `${what}: HTTP ${res.status}: ${excerpt(res.text)}`, { backend: BACKEND, retryable: true });
  }
  return failed(`${what}: HTTP ${res.status}: ${excerpt(res.text)}`, res.status >= 500 || res.status === 429);
}

/**
 * The id at the end of a Location header (`.../items/12`). QGIS Server 3.22 writes the request body into
 * the query of its Location and puts the id after it (`.../items?{...}=/12`): then the id is what follows the last slash.
 */
export function idFromLocation(location: string | null): string | undefined {
  if (!location) return undefined;
  const lastOf = (s: string) => s.slice(s.lastIndexOf("/") + 1);
  let last = lastOf(location.split(/[?#]/)[0]!.replace(/\/+$/, ""));
  if (last === "items" || last === "") last = lastOf(location.replace(/\/+$/, ""));
  try {
    last = decodeURIComponent(last);
  } catch {
    // Not percent-encoded after all: keep it as written.
  }
  return last && last !== "items" ? last.replace(/\.(geo)?json$/, "") : undefined;
}

/** JSON with every non-ASCII character as a \\u escape: the same JSON, and qgis_mapserver (which counts Content-Length in characters) reads it whole. */
export function asciiJson(value: unknown): string {
  return JSON.stringify(value).replace(/[\u0080-\uffff]/g, (c) => `\\u${c.charCodeAt(0).toString(16).padStart(4, "0")}`);
}

export function ogcApiWriter(http: WfsHttp, o: WfsProducerOptions): EditWriter {
  const base = http.baseUrl.replace(/\/+$/, "");
  const items = (collection: string) => `${base}/collections/${encodeURIComponent(collection)}/items`;
  const item = (collection: string, id: string) => `${items(collection)}/${encodeURIComponent(id)}`;
  const idProperty = o.idProperty;

  /** The server's ids of the features whose id property equals `key`. */
  async function lookup(collection: string, key: string): Promise<string[]> {
    const u = new URL(items(collection));
    u.searchParams.set(idProperty!, key);
    u.searchParams.set("limit", "100");
    const res = await http.request({ url: u.toString(), accept: `${GEOJSON}, application/json` });
    if (res.status >= 500) throw new GeoWatchError("CONNECT", `lookup of ${idProperty}=${key} in ${collection}: HTTP ${res.status}: ${excerpt(res.text)}`, { backend: BACKEND, retryable: true });
    if (res.status >= 400) throw new GeoWatchError("SEND", `lookup of ${idProperty}=${key} in ${collection}: HTTP ${res.status}: ${excerpt(res.text)}`, { backend: BACKEND });
    let body: { features?: Array<{ id?: unknown; properties?: Record<string, unknown> | null }> };
    try {
      body = JSON.parse(res.text) as typeof body;
    } catch {
      throw new GeoWatchError("SEND", `lookup in ${collection}: not JSON: ${excerpt(res.text)}`, { backend: BACKEND, retryable: true });
    }
    // Servers that ignore an unknown query parameter return everything: keep only exact matches.
    return (body.features ?? []).filter((f) => f.id !== undefined && f.id !== null && String(f.properties?.[idProperty!]) === key).map((f) => String(f.id));
  }

  function body(f: Feature, key?: string): string {
    const { id: _id, ...rest } = f;
    const properties = { ...(f.properties ?? {}) };
    if (idProperty !== undefined && key !== undefined) properties[idProperty] ??= key;
    return asciiJson({ ...rest, type: "Feature", geometry: f.geometry ?? null, properties });
  }

  async function create(e: Edit, key?: string): Promise<EditResult> {
    const res = await http.request({ method: "POST", url: items(e.typeName), body: body(e.feature, key), contentType: GEOJSON, accept: "application/json" });
    return outcome(res, `POST ${e.typeName}`, idFromLocation(res.headers.get("location")));
  }
  async function replace(e: Edit, id: string, key?: string): Promise<EditResult> {
    const res = await http.request({ method: "PUT", url: item(e.typeName, id), body: body(e.feature, key), contentType: GEOJSON, accept: "application/json" });
    return outcome(res, `PUT ${e.typeName}/${id}`, id);
  }
  async function remove(e: Edit, id: string): Promise<EditResult> {
    const res = await http.request({ method: "DELETE", url: item(e.typeName, id) });
    // Already gone: a replayed delete.
    if (res.status === 404) return { ok: true, id };
    return outcome(res, `DELETE ${e.typeName}/${id}`, id);
  }

  async function applyOne(e: Edit): Promise<EditResult> {
    const f = e.feature;
    const fid = f.id === undefined || f.id === null || f.id === "" ? undefined : String(f.id);
    if (idProperty === undefined) {
      if (e.action === "create") return create(e);
      if (fid === undefined) return failed(`an ${e.action} needs the Feature's id (the item id) or id_property`, false);
      return e.action === "delete" ? remove(e, fid) : replace(e, fid);
    }
    const p = f.properties?.[idProperty];
    const key = p !== undefined && p !== null && p !== "" ? String(p) : fid;
    if (key === undefined) {
      return e.action === "create" ? create(e) : failed(`an ${e.action} needs a stable id: property "${idProperty}" or the Feature's id`, false);
    }
    const ids = await lookup(e.typeName, key);
    if (e.action === "delete") {
      let last: EditResult = { ok: true };
      for (const id of ids) {
        last = await remove(e, id);
        if (!last.ok) return last;
      }
      return last;
    }
    if (ids.length === 0) return e.action === "create" ? create(e, key) : { ok: true };
    let last: EditResult = { ok: true };
    for (const id of ids) {
      last = await replace(e, id, key);
      if (!last.ok) return last;
    }
    return last;
  }

  return {
    async apply(edits: Edit[]): Promise<EditResult[]> {
      const results: EditResult[] = [];
      for (const e of edits) {
        try {
          results.push(await applyOne(e));
        } catch (err) {
          // Unreachable or refused credentials: the whole batch goes again (what went through converges by id).
          if (err instanceof GeoWatchError && (err.code === "CONNECT" || err.code === "TIMEOUT" || err.code === "AUTH")) throw err;
          results.push({ ok: false, error: err as Error, retryable: err instanceof GeoWatchError ? err.retryable : true });
        }
      }
      return results;
    },
  };
}
