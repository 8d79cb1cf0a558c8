/**
 * Fetching URLs that users or requests give: an allow-list of hosts, and private, loopback and link-local
 * addresses refused unless allowed. The address is checked when the socket connects (the lookup the
 * connection uses), so a name that resolves to a public address when checked and a private one when
 * connecting (DNS rebinding) is refused too; every redirect hop is checked again.
 */
import { lookup as dnsLookup, type LookupAddress } from "node:dns";
import { request as httpRequest, type IncomingMessage } from "node:http";
import { request as httpsRequest } from "node:https";
import { BlockList, isIP, type LookupFunction } from "node:net";
import { Readable, Transform } from "node:stream";
import { GeoWatchError } from "./errors.js";

export interface UrlPolicyOptions {
  /**
   * Hosts that may be fetched: names (`example.com`), wildcards (`*.example.com`), literal IP addresses,
   * or CIDR ranges (`10.1.0.0/16`: any host, by name or address, that resolves inside it). Empty or absent:
   * any host that resolves to a public address. A host or range listed here may be private or loopback.
   */
  allowHosts?: readonly string[];
  /** Hosts never fetched, in the same forms; checked before the allow-list. */
  denyHosts?: readonly string[];
  /** Allow private, loopback and link-local addresses for every allowed host. Default false. */
  allowPrivate?: boolean;
  /** URL schemes allowed. Default http and https. */
  protocols?: readonly string[];
}

export interface UrlPolicy {
  readonly options: Readonly<UrlPolicyOptions>;
  /** Why `host` (a name or literal address, before resolving) is refused, or undefined. */
  refuseHost(host: string): string | undefined;
  /** Why a resolved `address` of `host` is refused, or undefined. */
  refuseAddress(host: string, address: string): string | undefined;
}

export interface FetchPolicyOptions {
  /** Redirects followed, each checked against the policy. Default 5. */
  maxRedirects?: number;
  /** Whole request (connect, headers and body) time limit. Default 30 s. */
  timeoutMs?: number;
  /** The body is cut off with an error past this many bytes. Default unlimited. */
  maxBytes?: number;
}

export interface FetchInit {
  method?: string;
  headers?: Record<string, string>;
  body?: string | Uint8Array;
  signal?: AbortSignal;
}

/** Addresses that are not on the public internet. */
const PRIVATE = new BlockList();
for (const [net, prefix] of [
  ["0.0.0.0", 8], ["10.0.0.0", 8], ["100.64.0.0", 10], ["127.0.0.0", 8], ["169.254.0.0", 16], ["172.16.0.0", 12],
  ["192.0.0.0", 24], ["192.0.2.0", 24], ["192.168.0.0", 16], ["198.18.0.0", 15], ["198.51.100.0", 24], ["203.0.113.0", 24],
  ["224.0.0.0", 4], ["240.0.0.0", 4],
] as const) PRIVATE.addSubnet(net, prefix, "ipv4");
for (const [net, prefix] of [
  ["::", 128], ["::1", 128], ["fc00::", 7], ["fe80::", 10], ["ff00::", 8], ["2001:db8::", 32], ["64:ff9b:1::", 48],
] as const) PRIVATE.addSubnet(net, prefix, "ipv6");

/** True when `address` (IPv4, IPv6, or IPv4-mapped IPv6) is private, loopback, link-local or reserved. */
export function isPrivateAddress(address: string): boolean {
  const mapped = /^::ffff:(\d+\.\d+\.\d+\.\d+)$/i.exec(address);
  if (mapped) return PRIVATE.check(mapped[1]!, "ipv4");
  const family = isIP(address);
  if (family === 0) return true;
  return PRIVATE.check(address, family === 4 ? "ipv4" : "ipv6");
}

interface HostRules {
  names: string[];
  suffixes: string[];
  ranges: BlockList;
  hasRanges: boolean;
}

function rules(entries: readonly string[] | undefined, what: string): HostRules {
  const r: HostRules = { names: [], suffixes: [], ranges: new BlockList(), hasRanges: false };
  for (const raw of entries ?? []) {
    const e = raw.trim().toLowerCase().replace(/^\[|\]$/g, "");
    if (e === "") continue;
    const cidr = /^(.+)\/(\d{1,3})$/.exec(e);
    if (cidr && isIP(cidr[1]!)) {
      const family = isIP(cidr[1]!) === 4 ? "ipv4" : "ipv6";
      const prefix = Number(cidr[2]);
      if (prefix > (family === "ipv4" ? 32 : 128)) throw new GeoWatchError("CONFIG", `${what}: "${raw}" is not a valid CIDR range`);
      r.ranges.addSubnet(cidr[1]!, prefix, family);
      r.hasRanges = true;
    } else if (isIP(e)) {
      // An address names that host literally (like a name); a CIDR range matches what names resolve to.
      r.names.push(e);
    } else if (e.startsWith("*.")) {
      r.suffixes.push(e.slice(1));
    } else if (/^[a-z0-9.-]+$/.test(e)) {
      r.names.push(e.replace(/\.$/, ""));
    } else {
      throw new GeoWatchError("CONFIG", `${what}: "${raw}" is not a host name, wildcard (*.example.com), address or CIDR range`);
    }
  }
  return r;
}

const matchesName = (r: HostRules, host: string) => r.names.includes(host) || r.suffixes.some((s) => host.endsWith(s));
const matchesAddress = (r: HostRules, address: string) => {
  if (!r.hasRanges) return false;
  const mapped = /^::ffff:(\d+\.\d+\.\d+\.\d+)$/i.exec(address);
  const a = mapped ? mapped[1]! : address;
  const family = isIP(a);
  return family !== 0 && r.ranges.check(a, family === 4 ? "ipv4" : "ipv6");
};

/** A URL policy; a bad allow or deny entry is a CONFIG error naming it. */
export function urlPolicy(options: UrlPolicyOptions = {}): UrlPolicy {
  const allow = rules(options.allowHosts, "allow_hosts");
  const deny = rules(options.denyHosts, "deny_hosts");
  const restricted = (options.allowHosts ?? []).some((h) => h.trim() !== "");
  const bare = (host: string) => host.toLowerCase().replace(/^\[|\]$/g, "").replace(/\.$/, "");
  return Object.freeze({
    options: Object.freeze({ ...options }),
    refuseHost(host: string) {
      const h = bare(host);
      if (matchesName(deny, h) || (isIP(h) && matchesAddress(deny, h))) return `host "${h}" is on the deny list`;
      if (restricted && !matchesName(allow, h) && !(isIP(h) && matchesAddress(allow, h)) && !(allow.hasRanges && !isIP(h))) {
        return `host "${h}" is not on the allow list (${(options.allowHosts ?? []).join(", ")})`;
      }
      return undefined;
    },
    refuseAddress(host: string, address: string) {
      const h = bare(host);
      if (matchesAddress(deny, address)) return `address ${address} of "${h}" is on the deny list`;
      const listed = matchesName(allow, h) || matchesAddress(allow, address);
      // A host allowed only through CIDR ranges must resolve inside one of them.
      if (restricted && !matchesName(allow, h) && !matchesAddress(allow, address)) return `address ${address} of "${h}" is not in an allowed range`;
      if (isPrivateAddress(address) && !options.allowPrivate && !listed) {
        return `"${h}" resolves to ${address}, a private, loopback or link-local address (allow it with allow_private or by listing the host)`;
      }
      return undefined;
    },
  });
}

const refused = (url: string, why: string) => new GeoWatchError("URL_REFUSED", `refused to fetch ${redact(url)}: ${why}`);

/** The URL without user info or query (which may hold credentials or tokens). */
function redact(url: string): string {
  try {
    const u = new URL(url);
    return `${u.protocol}//${u.host}${u.pathname}`;
  } catch {
    return JSON.stringify(url.slice(0, 200));
  }
}

/** Checks a URL against the policy (scheme, host lists, and every address the host resolves to). */
export async function checkUrl(url: string | URL, policy: UrlPolicy): Promise<URL> {
  let u: URL;
  try {
    u = new URL(String(url));
  } catch {
    throw refused(String(url), "not a valid absolute URL");
  }
  const protocols = policy.options.protocols ?? ["http", "https"];
  if (!protocols.includes(u.protocol.replace(/:$/, ""))) throw refused(u.href, `scheme "${u.protocol.replace(/:$/, "")}" is not allowed (allowed: ${protocols.join(", ")})`);
  const host = u.hostname.replace(/^\[|\]$/g, "");
  const why = policy.refuseHost(host);
  if (why) throw refused(u.href, why);
  const addresses = isIP(host) ? [host] : await resolveAll(host).catch((err: unknown) => {
    throw refused(u.href, `host "${host}" does not resolve (${(err as Error).message})`);
  });
  for (const a of addresses) {
    const bad = policy.refuseAddress(host, a);
    if (bad) throw refused(u.href, bad);
  }
  return u;
}

function resolveAll(host: string): Promise<string[]> {
  return new Promise((resolve, reject) => {
    dnsLookup(host, { all: true }, (err, addresses: LookupAddress[]) => (err ? reject(err) : resolve(addresses.map((a) => a.address))));
  });
}

/** The lookup the socket uses: every resolved address must pass, or the connection fails. */
function checkedLookup(policy: UrlPolicy): LookupFunction {
  return (hostname, options, callback) => {
    dnsLookup(hostname, { ...options, all: true }, (err, addresses: LookupAddress[]) => {
      if (err) return callback(err, "", 4);
      for (const a of addresses) {
        const why = policy.refuseAddress(hostname, a.address);
        if (why) return callback(new GeoWatchError("URL_REFUSED", `refused to connect: ${why}`), "", 4);
      }
      if ((options as { all?: boolean }).all) return (callback as unknown as (e: null, a: LookupAddress[]) => void)(null, addresses);
      const first = addresses[0];
      if (!first) return callback(new Error(`no address for ${hostname}`), "", 4);
      callback(null, first.address, first.family);
    });
  };
}

const REDIRECTS = new Set([301, 302, 303, 307, 308]);

/**
 * `fetch` for URLs a user or request gave: checked against `policy` before connecting, at connect time,
 * and on every redirect (Authorization and Cookie are dropped when a redirect leaves the origin).
 * Resolves to a WHATWG Response; refusals are GeoWatchError "URL_REFUSED".
 */
export async function fetchWithPolicy(url: string | URL, init: FetchInit, policy: UrlPolicy, opts: FetchPolicyOptions = {}): Promise<Response> {
  const maxRedirects = opts.maxRedirects ?? 5;
  const timeout = AbortSignal.timeout(opts.timeoutMs ?? 30_000);
  const signal = init.signal ? AbortSignal.any([init.signal, timeout]) : timeout;
  let current = await checkUrl(url, policy);
  let method = (init.method ?? "GET").toUpperCase();
  let body = init.body;
  let headers = { ...(init.headers ?? {}) };
  for (let hop = 0; ; hop++) {
    const res = await send(current, method, headers, body, policy, signal);
    const status = res.statusCode ?? 0;
    const location = res.headers.location;
    if (!REDIRECTS.has(status) || !location) return toResponse(res, opts.maxBytes, current.href);
    res.resume();
    if (hop >= maxRedirects) throw new GeoWatchError("FETCH", `too many redirects (more than ${maxRedirects}) from ${redact(String(url))}`);
    const next = await checkUrl(new URL(location, current), policy);
    if (next.origin !== current.origin) {
      headers = Object.fromEntries(Object.entries(headers).filter(([k]) => !/^(authorization|cookie|proxy-authorization)$/i.test(k)));
    }
    if (status === 303 || ((status === 301 || status === 302) && method === "POST")) {
      method = method === "HEAD" ? "HEAD" : "GET";
      body = undefined;
      headers = Object.fromEntries(Object.entries(headers).filter(([k]) => !/^content-(type|length)$/i.test(k)));
    }
    current = next;
  }
}

function send(u: URL, method: string, headers: Record<string, string>, body: string | Uint8Array | undefined, policy: UrlPolicy, signal: AbortSignal): Promise<IncomingMessage> {
  return new Promise((resolve, reject) => {
    const request = u.protocol === "https:" ? httpsRequest : httpRequest;
    const req = request(u, { method, headers, lookup: checkedLookup(policy), signal }, resolve);
    req.on("error", (err: Error) => {
      if (err instanceof GeoWatchError) return reject(err);
      const inner = (err as { cause?: unknown }).cause;
      if (inner instanceof GeoWatchError) return reject(inner);
      reject(new GeoWatchError("FETCH", `${method} ${redact(u.href)} failed: ${err.message}`, { cause: err, retryable: true }));
    });
    req.end(body === undefined ? undefined : body);
  });
}

function toResponse(res: IncomingMessage, maxBytes: number | undefined, url: string): Response {
  let stream: Readable = res;
  if (maxBytes !== undefined) {
    let seen = 0;
    stream = res.pipe(
      new Transform({
        transform(chunk: Buffer, _enc, done) {
          seen += chunk.length;
          if (seen > maxBytes) return done(new GeoWatchError("FETCH", `response from ${redact(url)} is larger than ${maxBytes} bytes`));
          done(null, chunk);
        },
      }),
    );
    res.on("error", (err) => stream.destroy(err));
  }
  const headers = new Headers();
  for (const [k, v] of Object.entries(res.headers)) {
    if (v === undefined) continue;
    for (const one of Array.isArray(v) ? v : [v]) headers.append(k, one);
  }
  const status = res.statusCode ?? 500;
  const nullBody = status === 204 || status === 205 || status === 304;
  if (nullBody) res.resume();
  const response = new Response(nullBody ? null : (Readable.toWeb(stream) as ReadableStream<Uint8Array>), { status: status < 200 ? 502 : status, statusText: res.statusMessage ?? "", headers });
  Object.defineProperty(response, "url", { value: url });
  return response;
}
