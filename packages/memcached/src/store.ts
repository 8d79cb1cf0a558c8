import { GeoWatchError, guardStore, payloadBytes } from "@geowatch/core";
import type { BackendHealth, ManagedStore, Payload, Store, StoreWrite } from "@geowatch/core";
import { OP, STATUS, openLink, statusText } from "./client.js";
import type { Link, Reply } from "./client.js";
import { memcachedStoreSchema, parseOptions, serversOf } from "./options.js";
import type { MemcachedStoreOptions } from "./options.js";

/** A memcached store: the `Store` contract plus what the server told it at connect. */
export interface MemcachedStore extends Store {
  connect(): Promise<void>;
  read(key: string): Promise<Payload | undefined>;
  health(): BackendHealth;
  close(): Promise<void>;
  /** The server's `item_size_max` (the smallest over the servers) and the largest value this store writes under a short key. */
  limits(): Promise<{ itemSizeMax: number | undefined; maxValueBytes: number | undefined }>;
}

/** memcached's key limit (bytes) and the item header a value shares `item_size_max` with (item struct, CAS, CRLF: ~60 bytes). */
const MAX_KEY_BYTES = 250;
const ITEM_OVERHEAD = 64;
/** Expiry values above this are unix times to memcached. */
const RELATIVE_LIMIT = 30 * 86400;
/** A read's CAS is used by the rewrite that follows it within this long (the core's read-merge-write). */
const SEEN_TTL_MS = 120_000;

interface Seen {
  cas: Buffer | undefined;
  at: number;
}

/** `{name}` matches one segment (no `/`), `*` anything; the rest literally. */
function compilePattern(p: string): RegExp {
  let re = "";
  for (const part of p.split(/(\{[^}]*\}|\*)/)) {
    if (part === "*") re += ".*";
    else if (/^\{[^}]*\}$/.test(part)) re += "[^/]+";
    else re += part.replace(/[.*+?^${}()|[\]\\]/g, "\\$&");
  }
  return new RegExp(`^${re}$`);
}

const u32 = (n: number): Buffer => {
  const b = Buffer.alloc(4);
  b.writeUInt32BE(n >>> 0, 0);
  return b;
};

/**
 * One memcached item per key. `append: true` uses the protocol's atomic APPEND (ADD when the key is new, and
 * APPEND again when another writer's ADD won), so concurrent writers never drop each other's bytes; a rewrite
 * that follows a read of the same key (the core's read-merge-write for codecs that cannot append) is a
 * compare-and-set on the CAS that read returned. Values above the item size limit fail with a STORE error.
 */
export function createMemcachedStore(options: MemcachedStoreOptions): MemcachedStore {
  const opts = parseOptions<MemcachedStoreOptions>(memcachedStoreSchema, options, "memcached store");
  const prefix = opts.keyPrefix ?? "";
  const timeoutMs = opts.timeoutMs ?? 1000;
  const casRetries = opts.casRetries ?? 10;
  const rules = (opts.ttls ?? []).map((r) => ({ re: compilePattern(r.key), ttl: r.ttl }));
  const seen = new Map<string, Seen>();
  const queues = new Map<string, Promise<void>>();
  let link: Link | undefined;
  let itemSizeMax: number | undefined;
  let down: string | undefined;
  let probe: NodeJS.Timeout | undefined;
  let probing = false;

  function open(): Link {
    if (link) return link;
    const l = openLink(serversOf(opts), timeoutMs);
    l.onReachable((ok, error) => {
      down = ok ? undefined : (error ?? "unreachable");
    });
    return (link = l);
  }

  function fullKey(key: string): string {
    const full = prefix + key;
    const refuse = (why: string): never => {
      throw new GeoWatchError("VALIDATE", `key "${full.length > 80 ? `${full.slice(0, 80)}...` : full}" ${why}`, { backend: "memcached", path: key });
    };
    if (key === "") refuse("is empty");
    if (/[\x00-\x20\x7f]/.test(full)) refuse("holds a space or control character (memcached keys cannot)");
    if (Buffer.byteLength(full) > MAX_KEY_BYTES) refuse(`is ${Buffer.byteLength(full)} bytes, longer than memcached's ${MAX_KEY_BYTES}`);
    return full;
  }

  /** The largest value for a key: `max_value_bytes`, and what fits in `item_size_max` beside the key and the item header. */
  function maxFor(full: string): number | undefined {
    const server = itemSizeMax === undefined ? undefined : itemSizeMax - ITEM_OVERHEAD - Buffer.byteLength(full);
    if (opts.maxValueBytes === undefined) return server;
    return server === undefined ? opts.maxValueBytes : Math.min(server, opts.maxValueBytes);
  }

  function ttlOf(key: string): number {
    return rules.find((r) => r.re.test(key))?.ttl ?? opts.ttl ?? 0;
  }

  /** memcached's expiry field: relative seconds up to 30 days, a unix time beyond. */
  function expiry(ttl: number): Buffer {
    return u32(ttl > RELATIVE_LIMIT ? Math.floor(Date.now() / 1000) + ttl : ttl);
  }

  function storeError(key: string, what: string, r: Reply, retryable: boolean): GeoWatchError {
    return new GeoWatchError("STORE", `${what} of key "${key}" failed: ${statusText(r.status)}${r.value.length ? ` (${r.value.toString("utf8").slice(0, 200)})` : ""}`, {
      backend: "memcached",
      retryable,
      path: key,
    });
  }

  function tooLarge(key: string, bytes: number, appending: boolean): GeoWatchError {
    const m = maxFor(key);
    const max = m !== undefined ? `${m} bytes` : "its limit";
    const why = appending
      ? `appending ${bytes} bytes would grow it past the server's item size limit (item_size_max ${itemSizeMax ?? "?"} bytes; values up to ${max})`
      : `its value is ${bytes} bytes, above the largest value the server takes (${max}; item_size_max ${itemSizeMax ?? "?"} bytes)`;
    return new GeoWatchError("STORE", `key "${key}": ${why}; use mode: snapshot with which: last, a shorter ttl or a finer key`, { backend: "memcached", path: key });
  }

  /** Fails on a status the caller does not handle. */
  function expectOk(key: string, what: string, r: Reply, bytes: number, appending = false): void {
    if (r.status === STATUS.ok) return;
    if (r.status === STATUS.tooLarge) throw tooLarge(key, bytes, appending);
    const transient = r.status === STATUS.outOfMemory || r.status === STATUS.busy || r.status === STATUS.tempFailure;
    throw storeError(key, what, r, transient);
  }

  async function appendValue(full: string, body: Buffer, ttl: number): Promise<void> {
    const l = open();
    for (let i = 0; i < casRetries; i++) {
      const a = await l.send({ opcode: OP.append, key: full, value: body });
      if (a.status === STATUS.ok) {
        // APPEND keeps the old expiry; a TTL counts from the last write.
        if (ttl > 0) await l.send({ opcode: OP.touch, key: full, extras: expiry(ttl) });
        return;
      }
      if (a.status !== STATUS.notStored && a.status !== STATUS.notFound) return expectOk(full, "append", a, body.length, true);
      // NOT_STORED means a missing key or a value that would grow past the item size limit: an empty APPEND tells which.
      if (i > 0) {
        const probe = await l.send({ opcode: OP.append, key: full, value: Buffer.alloc(0) });
        if (probe.status === STATUS.ok) throw tooLarge(full, body.length, true);
      }
      const c = await l.send({ opcode: OP.add, key: full, extras: Buffer.concat([u32(0), expiry(ttl)]), value: body });
      if (c.status === STATUS.ok) return;
      // Another writer created the key between our APPEND and ADD: append to theirs.
      if (c.status !== STATUS.exists && c.status !== STATUS.notStored) return expectOk(full, "add", c, body.length);
    }
    throw new GeoWatchError("STORE", `append to key "${full}" kept racing with other writers (${casRetries} tries)`, { backend: "memcached", retryable: true, path: full });
  }

  async function replaceValue(full: string, body: Buffer, ttl: number): Promise<void> {
    const l = open();
    const extras = Buffer.concat([u32(0), expiry(ttl)]);
    const s = seen.get(full);
    seen.delete(full);
    if (s && Date.now() - s.at < SEEN_TTL_MS) {
      // A rewrite of what a read saw: only if nobody wrote in between (CAS), or nobody created it (ADD).
      const r = s.cas ? await l.send({ opcode: OP.set, key: full, extras, value: body, cas: s.cas }) : await l.send({ opcode: OP.add, key: full, extras, value: body });
      if (r.status === STATUS.exists || r.status === STATUS.notFound || r.status === STATUS.notStored) {
        throw new GeoWatchError("STORE", `key "${full}" changed since it was read (another writer); read again and retry`, { backend: "memcached", retryable: true, path: full });
      }
      return expectOk(full, "compare-and-set", r, body.length);
    }
    expectOk(full, "set", await l.send({ opcode: OP.set, key: full, extras, value: body }), body.length);
  }

  async function askVersions(): Promise<void> {
    const all = await open().each(OP.version, "", false);
    const bad = all.find((a) => a.replies[0]?.status !== STATUS.ok);
    if (bad) throw new GeoWatchError("CONNECT", `memcached ${bad.server} did not answer VERSION`, { backend: "memcached", retryable: true });
  }

  function startProbe(): void {
    if (probe) return;
    probe = setInterval(() => {
      if (probing) return;
      probing = true;
      askVersions()
        .catch(() => undefined) // the link has recorded the outage; health() reports it
        .finally(() => (probing = false));
    }, opts.healthIntervalMs ?? 1000);
    probe.unref();
  }

  return {
    capabilities: { append: true, read: true },
    async limits() {
      return { itemSizeMax, maxValueBytes: maxFor("") };
    },
    async connect() {
      await askVersions();
      // The item size limit (`-I`), from every server: the smallest one bounds what this store writes.
      const settings = await open().each(OP.stat, "settings", true);
      let min: number | undefined;
      for (const s of settings) {
        const v = Number(s.replies.find((r) => r.key === "item_size_max")?.value.toString("utf8"));
        if (Number.isFinite(v) && v > 0) min = Math.min(min ?? v, v);
      }
      itemSizeMax = min;
      startProbe();
    },
    async write(op: StoreWrite): Promise<void> {
      const full = fullKey(op.key);
      const body = Buffer.from(payloadBytes(op.body));
      const ttl = ttlOf(op.key);
      const max = maxFor(full);
      if (max !== undefined && body.length > max) throw tooLarge(full, body.length, false);
      // Writes of one key apply in the order they were issued (a later flush's `which: last` wins).
      const before = queues.get(full);
      const mine = (before ?? Promise.resolve()).then(
        () => (op.append ? appendValue(full, body, ttl) : replaceValue(full, body, ttl)),
        () => (op.append ? appendValue(full, body, ttl) : replaceValue(full, body, ttl)),
      );
      const tail = mine.then(
        () => undefined,
        () => undefined,
      );
      queues.set(full, tail);
      try {
        await mine;
      } finally {
        if (queues.get(full) === tail) queues.delete(full);
      }
    },
    async read(key: string): Promise<Payload | undefined> {
      const full = fullKey(key);
      const r = await open().send({ opcode: OP.get, key: full });
      if (r.status === STATUS.notFound) {
        seen.set(full, { cas: undefined, at: Date.now() });
        return undefined;
      }
      if (r.status !== STATUS.ok) throw storeError(full, "get", r, false);
      seen.set(full, { cas: r.cas, at: Date.now() });
      return new Uint8Array(r.value);
    },
    health(): BackendHealth {
      return down === undefined ? { ok: true } : { ok: false, error: down };
    },
    async close() {
      if (probe) clearInterval(probe);
      probe = undefined;
      link?.close();
      link = undefined;
    },
  };
}

/**
 * memcached store, wrapped in core's runtime layer (connect once with retries, refuse calls after close, close once),
 * for use without a config. The backend definition hands the runtime the raw object instead.
 */
export function memcachedStore(options: MemcachedStoreOptions): ManagedStore<MemcachedStore> {
  return guardStore(createMemcachedStore(options), { name: "memcached store", backend: "memcached" });
}
