/**
 * Rows from a CKAN DataStore through `datastore_search`, page by page. Two paging styles, detected on the
 * first call: CKAN 2.12's cursor (`include_next_page` gives `next_page: {"_id": {"gt": N}}`, merged into the
 * filters; needs sort by `_id`) and CKAN 2.11's offset paging (`_links.next`). Pages are fetched one ahead
 * of the writer so CKAN and the ZIP work at once; only two pages are ever held.
 */
import { GeoWatchError, fetchWithPolicy } from "@geowatch/core";
import type { UrlPolicy } from "@geowatch/core";

export interface DatastoreQuery {
  apiUrl: string;
  resourceId: string;
  filters?: Record<string, unknown>;
  q?: string;
  offset?: number;
  limit?: number;
  /** CKAN API key or token, sent in the Authorization header. */
  key?: string;
}

export interface Field {
  id: string;
  type: string;
}

export interface Page {
  fields: Field[];
  rows: unknown[][];
  /** Total rows the query matches (before offset/limit), when CKAN said. */
  total?: number;
}

export type PagingStyle = "cursor" | "offset";

interface SearchResult {
  fields?: Field[];
  records?: unknown[];
  total?: number;
  next_page?: Record<string, unknown>;
  _links?: { next?: string };
}

export interface DatastoreOptions {
  policy: UrlPolicy;
  pageSize: number;
  timeoutMs: number;
  signal?: AbortSignal;
}

/** One datastore_search call (POST JSON). CKAN's own errors come back as GeoWatchErrors naming them. */
export async function datastoreSearch(apiUrl: string, body: Record<string, unknown>, key: string | undefined, o: Pick<DatastoreOptions, "policy" | "timeoutMs" | "signal">): Promise<SearchResult> {
  const headers: Record<string, string> = { "content-type": "application/json" };
  if (key) headers.authorization = key;
  const res = await fetchWithPolicy(apiUrl, { method: "POST", headers, body: JSON.stringify(body), signal: o.signal }, o.policy, { timeoutMs: o.timeoutMs, maxRedirects: 3 });
  const text = await res.text();
  let parsed: { success?: boolean; result?: SearchResult; error?: Record<string, unknown> };
  try {
    parsed = JSON.parse(text) as typeof parsed;
  } catch {
    throw new GeoWatchError("FETCH", `datastore_search answered ${res.status} with no JSON: ${text.slice(0, 200)}`, { retryable: res.status >= 500 });
  }
  if (!res.ok || parsed.success !== true || !parsed.result) {
    const err = parsed.error ?? {};
    const detail = Object.entries(err)
      .filter(([k]) => k !== "__type")
      .map(([k, v]) => `${k}: ${typeof v === "string" ? v : JSON.stringify(v)}`)
      .join("; ");
    throw new GeoWatchError("FETCH", `datastore_search failed (${res.status}${err.__type ? ` ${String(err.__type)}` : ""}): ${detail || text.slice(0, 200)}`, {
      retryable: res.status >= 500 || res.status === 429,
    });
  }
  return parsed.result;
}

/** Rows the query will give (limit applied), or undefined when CKAN cannot say. */
export async function countRows(query: DatastoreQuery, o: Pick<DatastoreOptions, "policy" | "timeoutMs">): Promise<number | undefined> {
  const body: Record<string, unknown> = { resource_id: query.resourceId, limit: 0 };
  if (query.filters) body.filters = query.filters;
  if (query.q) body.q = query.q;
  const r = await datastoreSearch(query.apiUrl, body, query.key, o);
  if (typeof r.total !== "number") return undefined;
  const n = Math.max(0, r.total - (query.offset ?? 0));
  return query.limit === undefined ? n : Math.min(n, query.limit);
}

const isCursorRefusal = (err: unknown) => err instanceof GeoWatchError && /include_next_page|next_page/.test(err.message);

/** The pages of a query, in `_id` order under the cursor style. */
export async function* datastorePages(query: DatastoreQuery, o: DatastoreOptions, onStyle?: (s: PagingStyle) => void): AsyncGenerator<Page> {
  // Lists are the cheapest to parse, but CKAN 2.12 refuses q with records_format=lists ("Query is not a single
  // statement"): with q, records come as objects and are put in field order here.
  const asObjects = Boolean(query.q);
  const base: Record<string, unknown> = { resource_id: query.resourceId, records_format: asObjects ? "objects" : "lists" };
  if (query.q) base.q = query.q;
  const limit = query.limit ?? Number.POSITIVE_INFINITY;
  const userFilters = query.filters ?? {};
  let got = 0;
  let style: PagingStyle = "cursor";
  const size = () => Math.min(o.pageSize, limit - got);
  if (size() <= 0) return;

  const first = async (): Promise<SearchResult> => {
    const body = { ...base, filters: userFilters, offset: query.offset ?? 0, limit: size(), sort: "_id", include_next_page: true };
    try {
      const r = await datastoreSearch(query.apiUrl, body, query.key, o);
      if (r.next_page === undefined && r._links !== undefined) style = "offset";
      return r;
    } catch (err) {
      if (!isCursorRefusal(err)) throw err;
      // CKAN 2.11 does not know include_next_page: offset paging along _links.next.
      style = "offset";
      const { include_next_page: _drop, ...plain } = body;
      return datastoreSearch(query.apiUrl, plain, query.key, o);
    }
  };

  let current = await first();
  onStyle?.(style);
  const fields = current.fields ?? [];
  let offset = (query.offset ?? 0);
  const ids = fields.map((f) => f.id);
  const toRows = (records: unknown[]): unknown[][] =>
    asObjects ? records.map((r) => ids.map((id) => (r as Record<string, unknown>)[id] ?? null)) : (records as unknown[][]);
  for (;;) {
    const rows = toRows(current.records ?? []);
    got += rows.length;
    offset += rows.length;
    const short = rows.length === 0 || rows.length < Math.min(o.pageSize, limit - (got - rows.length));
    const done = short || got >= limit;
    let next: Promise<SearchResult> | undefined;
    if (!done) {
      if (style === "cursor") {
        if (!current.next_page) throw new GeoWatchError("FETCH", "datastore_search gave no next_page on a full page (cursor paging)");
        const filters = { ...userFilters, ...current.next_page };
        next = datastoreSearch(query.apiUrl, { ...base, filters, limit: size(), sort: "_id", include_next_page: true }, query.key, o);
      } else {
        // _links.next carries the offset; the same body with it keeps filters and q (2.11 answers _links
        // relative to the site, and the body form avoids re-encoding filters into a query string).
        next = datastoreSearch(query.apiUrl, { ...base, filters: userFilters, offset, limit: size(), sort: "_id" }, query.key, o);
      }
      // Keep a rejected prefetch from being reported unhandled while the writer still works on this page.
      next.catch(() => undefined);
    }
    yield { fields, rows, total: current.total };
    if (!next) return;
    current = await next;
  }
}
