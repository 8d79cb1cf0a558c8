import { readFileSync } from "node:fs";
import { GeoWatchError, reasonOf } from "./errors.js";

/** Resolves after `ms`, or early (rejecting nothing) when the signal aborts. */
export function sleep(ms: number, signal?: AbortSignal): Promise<void> {
  if (ms <= 0 || signal?.aborted) return Promise.resolve();
  return new Promise((resolve) => {
    const done = () => {
      clearTimeout(timer);
      signal?.removeEventListener("abort", done);
      resolve();
    };
    const timer = setTimeout(done, ms);
    signal?.addEventListener("abort", done, { once: true });
  });
}

/**
 * Waits up to `ms`, until `signal` aborts, or until something calls the waiter this puts in `waiters`
 * (a consumer's "records arrived" wake-up). The waiter removes itself when it fires.
 */
export function waitForWake(ms: number, signal: AbortSignal | undefined, waiters: Set<() => void>): Promise<void> {
  if (ms <= 0 || signal?.aborted) return Promise.resolve();
  return new Promise((resolve) => {
    const done = () => {
      clearTimeout(timer);
      signal?.removeEventListener("abort", done);
      waiters.delete(done);
      resolve();
    };
    const timer = setTimeout(done, ms);
    signal?.addEventListener("abort", done, { once: true });
    waiters.add(done);
  });
}

/** Exponential backoff with full jitter: try 1 waits up to base, try n up to base * 2^(n-1), capped. */
export function backoffMs(attempt: number, baseMs: number, maxMs: number): number {
  const ceiling = Math.min(maxMs, baseMs * 2 ** Math.max(0, attempt - 1));
  return Math.round(ceiling / 2 + Math.random() * (ceiling / 2));
}

/** Rejects with a TIMEOUT error when `promise` takes longer than `ms` (0 = no limit). */
export function withTimeout<T>(promise: Promise<T>, ms: number, what: string, backend?: string): Promise<T> {
  if (!ms || ms <= 0 || !Number.isFinite(ms)) return promise;
  let timer: NodeJS.Timeout | undefined;
  const timeout = new Promise<never>((_, reject) => {
    timer = setTimeout(
      () => reject(new GeoWatchError("TIMEOUT", `${what} took longer than ${ms} ms`, { backend, retryable: true })),
      ms,
    );
  });
  return Promise.race([promise, timeout]).finally(() => clearTimeout(timer));
}

const textDecoder = new TextDecoder("utf-8");
const textEncoder = new TextEncoder();

/** Payload as text (UTF-8). */
export function payloadText(payload: Uint8Array | string): string {
  return typeof payload === "string" ? payload : textDecoder.decode(payload);
}

/** Payload as bytes (UTF-8). */
export function payloadBytes(payload: Uint8Array | string): Uint8Array {
  return typeof payload === "string" ? textEncoder.encode(payload) : payload;
}

/** Byte length of a payload without copying strings into buffers. */
export function payloadSize(payload: Uint8Array | string): number {
  return typeof payload === "string" ? Buffer.byteLength(payload) : payload.byteLength;
}

/** A JSON text with object keys sorted, so equal objects give equal strings. */
export function stableStringify(value: unknown): string {
  if (value === null || typeof value !== "object") return JSON.stringify(value) ?? "null";
  if (Array.isArray(value)) return `[${value.map(stableStringify).join(",")}]`;
  const obj = value as Record<string, unknown>;
  const keys = Object.keys(obj).filter((k) => obj[k] !== undefined).sort();
  return `{${keys.map((k) => `${JSON.stringify(k)}:${stableStringify(obj[k])}`).join(",")}}`;
}

/** Reads a dotted path (`data.properties.id`) from a value; own properties only. */
export function getPath(value: unknown, path: string): unknown {
  let cur: unknown = value;
  for (const part of path.split(".")) {
    if (cur === null || typeof cur !== "object" || !Object.hasOwn(cur, part)) return undefined;
    cur = (cur as Record<string, unknown>)[part];
  }
  return cur;
}

/** Deepest nesting that JSON texts GeoWatch writes may have; deeper values overflow recursive encoders. */
export const MAX_NESTING = 1000;

/**
 * Where a value nests deeper than `limit` levels (iteratively, so it works on any depth): the path to the
 * first such point (`properties.a.a[0]`), or undefined when it does not.
 */
export function tooDeep(value: unknown, limit = MAX_NESTING): string | undefined {
  const stack: Array<{ v: unknown; depth: number; path: string }> = [{ v: value, depth: 0, path: "" }];
  while (stack.length > 0) {
    const { v, depth, path } = stack.pop()!;
    if (v === null || typeof v !== "object") continue;
    if (depth >= limit) return path || "(root)";
    if (Array.isArray(v)) {
      for (let i = v.length - 1; i >= 0; i--) stack.push({ v: v[i], depth: depth + 1, path: `${path}[${i}]` });
    } else {
      for (const k of Object.keys(v)) stack.push({ v: (v as Record<string, unknown>)[k], depth: depth + 1, path: path ? `${path}.${k}` : k });
    }
  }
  return undefined;
}

/** Why a value could not be encoded, in words a user can act on (not only "Maximum call stack size exceeded"). */
export function describeUnencodable(value: unknown, err: unknown): string {
  if (err instanceof RangeError) {
    const at = tooDeep(value);
    if (at !== undefined) return `value nests deeper than ${MAX_NESTING} levels (at ${shorten(at)})`;
  }
  const msg = err instanceof Error ? err.message : String(err);
  return msg;
}

/** A JSON text of `value`, or of what it is replaced with when it cannot be written (too deep, cyclic, BigInt). */
export function safeJson(value: unknown): { json: string; problem?: string } {
  try {
    return { json: JSON.stringify(value) ?? "null" };
  } catch (err) {
    const problem = describeUnencodable(value, err);
    return { json: JSON.stringify({ unencodable: problem }), problem };
  }
}

function shorten(path: string): string {
  return path.length > 120 ? `${path.slice(0, 60)}...${path.slice(-40)}` : path;
}

/**
 * A secret kept in a file (a password, a token, a CA certificate), trimmed; undefined when no path is given.
 * An unreadable file is a CONFIG error naming the option (`what`) and the path, never the content.
 */
export function readSecretFile(path: string | undefined, what: string, backend?: string): string | undefined {
  if (path === undefined) return undefined;
  try {
    return readFileSync(path, "utf8").trim();
  } catch (err) {
    throw new GeoWatchError("CONFIG", `${what}: cannot read "${path}": ${reasonOf(err)}`, { ...(backend ? { backend } : {}), cause: err, path: what });
  }
}
