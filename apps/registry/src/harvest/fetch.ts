import { GeoWatchError, fetchWithPolicy, urlPolicy } from "@geowatch/core";
import type { UrlPolicy, UrlPolicyOptions } from "@geowatch/core";

/** How the registry fetches the URLs users give: through core's URL policy, with time and size limits. */
export interface Fetcher {
  readonly policy: UrlPolicy;
  get(url: string, opts?: { accept?: string; maxBytes?: number; timeoutMs?: number; method?: string; body?: string; contentType?: string }): Promise<Fetched>;
}

export interface Fetched {
  url: string;
  status: number;
  contentType: string;
  body: Uint8Array;
  ms: number;
  text(): string;
}

export interface FetcherOptions extends UrlPolicyOptions {
  timeoutMs?: number;
  maxBytes?: number;
}

export function createFetcher(o: FetcherOptions = {}): Fetcher {
  const policy = urlPolicy(o);
  return {
    policy,
    async get(url, opts = {}) {
      const started = performance.now();
      const headers: Record<string, string> = { "user-agent": "geowatch-registry" };
      if (opts.accept) headers.accept = opts.accept;
      if (opts.contentType) headers["content-type"] = opts.contentType;
      const res = await fetchWithPolicy(
        url,
        { method: opts.method ?? "GET", headers, ...(opts.body !== undefined ? { body: opts.body } : {}) },
        policy,
        { timeoutMs: opts.timeoutMs ?? o.timeoutMs ?? 30_000, maxBytes: opts.maxBytes ?? o.maxBytes ?? 50 * 1024 * 1024, maxRedirects: 5 },
      );
      const body = new Uint8Array(await res.arrayBuffer());
      const ms = performance.now() - started;
      return {
        url: res.url || url,
        status: res.status,
        contentType: res.headers.get("content-type") ?? "",
        body,
        ms,
        text: () => new TextDecoder().decode(body),
      };
    },
  };
}

/** Text of a 2xx response, or a FETCH error naming the status. */
export async function getText(f: Fetcher, url: string, opts: Parameters<Fetcher["get"]>[1] = {}): Promise<string> {
  const r = await f.get(url, opts);
  if (r.status < 200 || r.status >= 300) {
    throw new GeoWatchError("FETCH", `${redactUrl(url)} answered HTTP ${r.status}`, { backend: "registry", retryable: r.status >= 500 });
  }
  return r.text();
}

export async function getJson(f: Fetcher, url: string): Promise<Record<string, unknown>> {
  const t = await getText(f, url, { accept: "application/json" });
  try {
    return JSON.parse(t) as Record<string, unknown>;
  } catch {
    throw new GeoWatchError("DECODE", `${redactUrl(url)} did not answer JSON`, { backend: "registry" });
  }
}

/** The URL without credentials or query values that may hold tokens. */
export function redactUrl(url: string): string {
  try {
    const u = new URL(url);
    u.username = "";
    u.password = "";
    for (const k of [...u.searchParams.keys()]) if (/token|key|secret|password|sig/i.test(k)) u.searchParams.set(k, "***");
    return u.href;
  } catch {
    return url;
  }
}

/** `base` with query parameters set (case-insensitively replacing ones it already has). */
export function withParams(base: string, params: Record<string, string>): string {
  const u = new URL(base);
  for (const [k, v] of Object.entries(params)) {
    for (const existing of [...u.searchParams.keys()]) if (existing.toLowerCase() === k.toLowerCase()) u.searchParams.delete(existing);
    u.searchParams.set(k, v);
  }
  return u.href;
}
