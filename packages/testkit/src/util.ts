import { createServer, type AddressInfo } from "node:net";
import * as core from "@geowatch/core";
import type { Consumer, InRecord, OutRecord, Payload, Producer } from "@geowatch/core";
import type { ChannelHarness } from "./types.js";

export const DEFAULT_TIMEOUT_MS = 10_000;

const encoder = new TextEncoder();
const decoder = new TextDecoder("utf-8", { fatal: false });

export function bytesOf(p: Payload): Uint8Array {
  return typeof p === "string" ? encoder.encode(p) : p;
}

export function textOf(p: Payload): string {
  return typeof p === "string" ? p : decoder.decode(p);
}

export function sameBytes(a: Payload, b: Payload): boolean {
  const x = bytesOf(a);
  const y = bytesOf(b);
  if (x.byteLength !== y.byteLength) return false;
  for (let i = 0; i < x.byteLength; i++) if (x[i] !== y[i]) return false;
  return true;
}

/** A short id that keeps records of one run apart from anything else on the server. */
export function runId(): string {
  return `gwtk${Date.now().toString(36)}${Math.random().toString(36).slice(2, 8)}`;
}

/** Distinct payloads `<id>-<i>`, so order and loss are visible. */
export function numbered(id: string, n: number): string[] {
  return Array.from({ length: n }, (_, i) => `${id}-${i}`);
}

/** Index of a numbered payload, or -1 when it is not one of this run's. */
export function indexOf(id: string, p: Payload): number {
  const m = new RegExp(`^${id}-(\\d+)$`).exec(textOf(p));
  return m ? Number(m[1]) : -1;
}

/** Text, plus the byte length when it differs from what was expected; for readable diffs. */
export function sortedTexts(ps: Payload[]): string[] {
  return ps.map(textOf).sort();
}

/** Opens an instance, runs `fn`, and always closes it; a close error never hides `fn`'s error. */
export async function using<T extends { close?(): Promise<void> }, R>(
  open: () => T | Promise<T>,
  fn: (instance: T) => Promise<R>,
): Promise<R> {
  const instance = await open();
  let failed = false;
  try {
    return await fn(instance);
  } catch (err) {
    failed = true;
    throw err;
  } finally {
    try {
      await instance.close?.();
    } catch (err) {
      if (!failed) throw err;
    }
  }
}

export function needConsumer(h: ChannelHarness): () => Consumer | Promise<Consumer> {
  if (!h.consumer) throw new Error("[geowatch-testkit] the harness has no consumer(); consumerSuite needs one");
  return h.consumer;
}

/** Puts records on the channel through the harness producer, else through `inject`. */
export async function produce(h: ChannelHarness, records: OutRecord[]): Promise<void> {
  if (h.producer) {
    await using(h.producer, async (p: Producer) => {
      const results = await p.send(records);
      const failed = results.map((r, i) => (r.ok ? undefined : `#${i}: ${r.error.message}`)).filter(Boolean);
      if (results.length !== records.length || failed.length > 0) {
        throw new Error(`[geowatch-testkit] could not put records on the channel (${results.length}/${records.length} results): ${failed.join("; ")}`);
      }
    });
    return;
  }
  if (h.inject) {
    await h.inject(records.map((r) => r.value));
    return;
  }
  throw new Error("[geowatch-testkit] the harness needs producer() or inject() to put records on the channel");
}

/** Receives until `n` records arrived or `timeoutMs` passed; returns what came. */
export async function receiveN(c: Consumer, n: number, timeoutMs: number): Promise<InRecord[]> {
  const got: InRecord[] = [];
  const deadline = Date.now() + timeoutMs;
  while (got.length < n) {
    const left = deadline - Date.now();
    if (left <= 0) break;
    got.push(...(await c.receive(n - got.length, { waitMs: Math.min(1000, left) })));
  }
  return got;
}

/** Everything that arrives within `ms`. */
export async function receiveFor(c: Consumer, ms: number, max = 100): Promise<InRecord[]> {
  const got: InRecord[] = [];
  const deadline = Date.now() + ms;
  for (let left = ms; left > 0; left = deadline - Date.now()) {
    got.push(...(await c.receive(max, { waitMs: Math.min(1000, left) })));
  }
  return got;
}

/** How long to listen when checking that nothing (more) arrives. */
export function quietMs(timeoutMs: number): number {
  return Math.min(2000, timeoutMs);
}

/** An export of @geowatch/core that may not exist in every version yet. */
export function coreExport<T>(name: string): T | undefined {
  return (core as Record<string, unknown>)[name] as T | undefined;
}

/** Acknowledges records the way the channel says: per-record ack and/or a commit of each stream's last `next`. */
export async function acknowledge(c: Consumer, records: InRecord[], caps: { acks?: boolean; ordering?: string }): Promise<void> {
  if (caps.acks) {
    if (!c.ack) throw new Error("[geowatch-testkit] capabilities say acks, but the consumer has no ack()");
    await c.ack(records);
  }
  if (caps.ordering === "stream") {
    if (!c.commit) throw new Error('[geowatch-testkit] capabilities say ordering "stream", but the consumer has no commit()');
    await c.commit(lastPositions(records));
  }
}

/** Each stream's last position (as received, which for ordered streams is the highest). */
export function lastPositions(records: InRecord[]): { stream: string; offset: string | number; next: string | number }[] {
  const last = new Map<string, { stream: string; offset: string | number; next: string | number }>();
  for (const r of records) {
    if (!r.position) throw new Error('[geowatch-testkit] ordering "stream" needs a position on every record');
    last.set(r.position.stream, r.position);
  }
  return [...last.values()];
}

/** Runs `fn` on a freshly set-up channel and always tears it down. */
export async function onChannel(setup: () => Promise<ChannelHarness>, fn: (h: ChannelHarness) => Promise<void>): Promise<void> {
  const h = await setup();
  try {
    await fn(h);
  } finally {
    await h.teardown?.();
  }
}

/**
 * A seeded PRNG (mulberry32) for tests with random data or kill moments: print the seed and accept it back
 * (`GEOWATCH_SEED`) so a failing run can be repeated.
 */
export function seededRandom(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

/** The seed for this run: `GEOWATCH_SEED` when set, else one from the clock; logged with `label`. */
export function testSeed(label: string): number {
  const env = process.env.GEOWATCH_SEED;
  const seed = env !== undefined && env !== "" ? Number(env) : Date.now() % 2 ** 31;
  console.log(`[${label}] seed ${seed} (set GEOWATCH_SEED=${seed} to repeat)`);
  return seed;
}

/** A TCP port free on 127.0.0.1 right now (for a server a test starts). */
export function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const s = createServer();
    s.once("error", reject);
    s.listen(0, "127.0.0.1", () => {
      const port = (s.address() as AddressInfo).port;
      s.close(() => resolve(port));
    });
  });
}

/** Polls `fn` every `everyMs` until it returns a value other than undefined (errors count as not yet); throws naming `what` after `ms`. */
export async function until<T>(what: string, fn: () => Promise<T | undefined> | T | undefined, ms: number, everyMs = 100): Promise<T> {
  const deadline = Date.now() + ms;
  for (;;) {
    const v = await Promise.resolve()
      .then(fn)
      .catch(() => undefined);
    if (v !== undefined) return v;
    if (Date.now() > deadline) throw new Error(`timed out after ${ms} ms waiting for ${what}`);
    await new Promise<void>((r) => setTimeout(r, everyMs));
  }
}
