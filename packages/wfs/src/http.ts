/**
 * HTTP for the wfs backend: every request through core's URL policy (private addresses refused unless
 * allowed, checked at connect time and on every redirect), Basic or bearer auth from secrets, a timeout
 * and a response size limit. The reader and the writer both use it.
 */
import { fetchWithPolicy, GeoWatchError, readSecretFile, reasonOf, urlPolicy } from "@geowatch/core";
import type { WfsConnectionOptions } from "./options.js";

export const BACKEND = "wfs";

export interface WfsResponse {
  status: number;
  headers: Headers;
  text: string;
  /** The URL that answered (after redirects). */
  url: string;
}

export interface WfsRequest {
  method?: "GET" | "POST" | "PUT" | "PATCH" | "DELETE";
  /** Absolute URL, or query parameters added to the service URL. */
  url?: string;
  params?: Record<string, string>;
  body?: string;
  contentType?: string;
  accept?: string;
}

/** One HTTP client per node. */
export interface WfsHttp {
  /** The service URL as configured. */
  readonly baseUrl: string;
  /** Sends a request; HTTP error statuses are returned, not thrown. Network failures and timeouts throw retryable CONNECT/TIMEOUT errors. */
  request(req: WfsRequest): Promise<WfsResponse>;
}

/** Reads a secret: the env ref through the runtime (`ctx.secret`), default process.env. */
export type SecretReader = (ref: string) => string | undefined;

/** The `Authorization` header the options ask for, or undefined; the value is never logged. */
export function authHeader(o: WfsConnectionOptions, secret: SecretReader): string | undefined {
  const username = o.username ?? secret("GEOWATCH_WFS_USERNAME");
  const token = o.token ?? secret("GEOWATCH_WFS_TOKEN") ?? readSecretFile(o.tokenFile ?? secret("GEOWATCH_WFS_TOKEN_FILE"), "token_file", BACKEND);
  if (username !== undefined && token !== undefined) {
    throw new GeoWatchError("CONFIG", "both a user name (Basic auth) and a token (bearer auth) are set: use one", { backend: BACKEND, path: "token" });
  }
  if (token !== undefined) return `Bearer ${token}`;
  if (username === undefined) return undefined;
  const password = o.password ?? secret("GEOWATCH_WFS_PASSWORD") ?? readSecretFile(o.passwordFile ?? secret("GEOWATCH_WFS_PASSWORD_FILE"), "password_file", BACKEND);
  if (password === undefined) {
    throw new GeoWatchError("CONFIG", "username is set but no password: set password, password_file, GEOWATCH_WFS_PASSWORD or GEOWATCH_WFS_PASSWORD_FILE", {
      backend: BACKEND,
      path: "password",
    });
  }
  return `Basic ${Buffer.from(`${username}:${password}`, "utf8").toString("base64")}`;
}


/** The service URL with query parameters set (names compared case-insensitively, as OGC services do). */
export function withParams(base: string, params: Record<string, string>): string {
  const u = new URL(base);
  for (const [k, v] of Object.entries(params)) {
    for (const existing of [...u.searchParams.keys()]) if (existing.toLowerCase() === k.toLowerCase()) u.searchParams.delete(existing);
    u.searchParams.set(k, v);
  }
  return u.toString();
}

/** Builds the node's HTTP client. Throws a CONFIG error for a bad URL or auth settings. */
export function wfsHttp(o: WfsConnectionOptions, secret: SecretReader = (ref) => process.env[ref]): WfsHttp {
  const baseUrl = o.url ?? secret("GEOWATCH_WFS_URL");
  if (baseUrl === undefined) throw new GeoWatchError("CONFIG", "url is required (or GEOWATCH_WFS_URL)", { backend: BACKEND, path: "url" });
  try {
    const u = new URL(baseUrl);
    if (u.protocol !== "http:" && u.protocol !== "https:") throw new Error(`protocol ${u.protocol} is not http: or https:`);
  } catch (err) {
    throw new GeoWatchError("CONFIG", `url "${baseUrl}" is not an http(s) URL: ${reasonOf(err)}`, { backend: BACKEND, path: "url", cause: err });
  }
  const auth = authHeader(o, secret);
  const policy = urlPolicy({ allowPrivate: o.allowPrivate ?? false, ...(o.allowHosts ? { allowHosts: o.allowHosts } : {}) });
  const timeoutMs = o.timeoutMs ?? 30_000;
  const maxBytes = o.maxResponseBytes ?? 64 * 1024 * 1024;
  return {
    baseUrl,
    async request(req: WfsRequest): Promise<WfsResponse> {
      const url = req.url ?? withParams(baseUrl, req.params ?? {});
      const headers: Record<string, string> = { "user-agent": "geowatch-wfs" };
      if (auth !== undefined) headers.authorization = auth;
      if (req.contentType !== undefined) headers["content-type"] = req.contentType;
      if (req.accept !== undefined) headers.accept = req.accept;
      const method = req.method ?? (req.body === undefined ? "GET" : "POST");
      let res: Response;
      try {
        res = await fetchWithPolicy(url, { method, headers, ...(req.body !== undefined ? { body: req.body } : {}) }, policy, { timeoutMs, maxBytes, maxRedirects: 5 });
      } catch (err) {
        throw networkError(err, method, url, timeoutMs);
      }
      let text: string;
      try {
        text = await res.text();
      } catch (err) {
        throw networkError(err, method, url, timeoutMs);
      }
      return { status: res.status, headers: res.headers, text, url: res.url || url };
    },
  };
}

/**
 * Policy refusals (URL_REFUSED) and size limits stay as they are (not retryable); network failures become
 * CONNECT or TIMEOUT errors, the codes the broker treats as "the sink is down" (retried for the whole outage).
 */
function networkError(err: unknown, method: string, url: string, timeoutMs: number): GeoWatchError {
  if (err instanceof GeoWatchError && !err.retryable) return err;
  const cause = err instanceof GeoWatchError && err.cause !== undefined ? err.cause : err;
  const name = cause instanceof Error ? cause.name : "";
  if (name === "TimeoutError" || name === "AbortError") {
    return new GeoWatchError("TIMEOUT", `${method} ${redactUrl(url)} timed out after ${timeoutMs} ms`, { backend: BACKEND, cause: err, retryable: true });
  }
  return new GeoWatchError("CONNECT", `${method} ${redactUrl(url)} failed: ${reasonOf(cause)}`, { backend: BACKEND, cause: err, retryable: true });
}

/** The URL without user info, for messages. */
export function redactUrl(url: string): string {
  try {
    const u = new URL(url);
    u.username = "";
    u.password = "";
    return u.toString();
  } catch {
    return url;
  }
}

/** A short excerpt of a response body for error messages. */
export function excerpt(text: string, max = 300): string {
  const t = text.replace(/\s+/g, " ").trim();
  return t.length > max ? `${t.slice(0, max)}...` : t;
}
