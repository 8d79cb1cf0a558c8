import { GeoWatchError, isGeoWatchError, isPermanent, reasonOf } from "./errors.js";
import type { Codec, Logger, Message, Payload, Store } from "./types.js";
import { renderKey } from "./template.js";
import { backoffMs, payloadText, sleep } from "./util.js";

/** Which buffered values a flush (or a read) keeps. */
export type Which = "first" | "last" | "all" | "index";

export interface StoreOutNode {
  name: string;
  store: Store;
  /** Packs buffered values; default one JSON value per line. */
  codec?: Codec;
  /** Store key; `{metadata.featuretype}`-style placeholders are filled from each message. */
  key: string;
  which?: Which;
  /** With `which: index`, the position to keep (negative counts from the end). */
  whichIndex?: number;
  /** `append` adds to what the key holds; `snapshot` replaces it. Default append. */
  mode?: "append" | "snapshot";
  /** Flush after this many buffered messages. Default 1000. */
  flushCount?: number;
  /** Flush this long after the first buffered message, in ms. Default 1000. */
  flushMs?: number;
  backend?: string;
}

interface Group {
  key: string;
  messages: Message[];
  waiters: Array<(failed: Failed[]) => void>;
  timer: NodeJS.Timeout | undefined;
}

export interface Failed {
  reason: string;
  message: Message;
  /** The store was unreachable at shutdown: leave the source unacknowledged. */
  undelivered?: boolean;
}

export interface StoreSinkOptions {
  logger: Logger;
  maxTries: number;
  retryBaseMs: number;
  retryMaxMs: number;
  signal: AbortSignal;
  onRetry(n: number): void;
}

const lines: Pick<Codec, "pack" | "unpack" | "contentType" | "appendable"> & { name: string } = {
  name: "ndjson",
  contentType: "application/x-ndjson",
  appendable: true,
  pack: (values) => values.map((v) => JSON.stringify(v) + "\n").join(""),
  unpack: (p) =>
    payloadText(p)
      .split("\n")
      .filter((l) => l.trim() !== "")
      .map((l) => JSON.parse(l) as unknown),
};

/** Packs values with a codec, falling back to newline-joined encodes. */
export function packWith(codec: Codec | undefined, values: unknown[]): Payload {
  if (!codec) return lines.pack!(values);
  if (codec.pack) return codec.pack(values);
  return values.map((v) => payloadText(codec.encode(v)) + "\n").join("");
}

/** Unpacks a store body with a codec, falling back to decoding each non-empty line. */
export function unpackWith(codec: Codec | undefined, body: Payload): unknown[] {
  if (!codec) return lines.unpack!(body);
  if (codec.unpack) return codec.unpack(body);
  return payloadText(body)
    .split("\n")
    .filter((l) => l.trim() !== "")
    .map((l) => codec.decode(l));
}

/** Applies `which` to a list. */
export function selectWhich<T>(values: T[], which: Which = "all", index = 0): T[] {
  if (values.length === 0) return values;
  switch (which) {
    case "all":
      return values;
    case "first":
      return [values[0]!];
    case "last":
      return [values[values.length - 1]!];
    case "index": {
      const v = values.at(index);
      return v === undefined ? [] : [v];
    }
  }
}

/**
 * Buffers messages for an output store and writes them packed. A message counts as delivered only when
 * the write holding it succeeded, so the broker acknowledges after the flush.
 */
export class StoreSink {
  private readonly groups = new Map<string, Group>();
  private count = 0;

  constructor(
    readonly node: StoreOutNode,
    private readonly o: StoreSinkOptions,
  ) {}

  get buffered(): number {
    return this.count;
  }

  /** Buffers messages; resolves with those that could not be stored once their flush finished. */
  add(messages: Message[]): Promise<Failed[]> {
    const failed: Failed[] = [];
    const waits: Array<Promise<Failed[]>> = [];
    const touched = new Set<Group>();
    for (const m of messages) {
      if (m.routes && !m.routes.includes(this.node.name)) continue;
      let key: string;
      try {
        key = renderKey(this.node.key, { ...m.metadata, metadata: m.metadata, value: m.value, key: m.key }, `store "${this.node.name}" key`);
      } catch (err) {
        failed.push({ reason: reasonOf(err), message: m });
        continue;
      }
      let g = this.groups.get(key);
      if (!g) this.groups.set(key, (g = { key, messages: [], waiters: [], timer: undefined }));
      g.messages.push(m);
      this.count++;
      touched.add(g);
    }
    for (const g of touched) {
      waits.push(new Promise<Failed[]>((resolve) => g.waiters.push(resolve)));
      if (g.messages.length >= (this.node.flushCount ?? 1000)) this.flush(g);
      else g.timer ??= setTimeout(() => this.flush(g), this.node.flushMs ?? 1000);
    }
    if (waits.length === 0) return Promise.resolve(failed);
    return Promise.all(waits).then((all) => failed.concat(...all));
  }

  /** Flushes every group now. */
  flushAll(): void {
    for (const g of [...this.groups.values()]) this.flush(g);
  }

  private flush(g: Group): void {
    if (this.groups.get(g.key) !== g) return;
    this.groups.delete(g.key);
    clearTimeout(g.timer);
    this.count -= g.messages.length;
    void this.write(g).then((failed) => {
      for (const w of g.waiters) w(failed);
    });
  }

  /** Writes one group with retries; never throws. */
  private async write(g: Group): Promise<Failed[]> {
    const { store, codec } = this.node;
    const selected = selectWhich(
      g.messages.map((m) => m.value),
      this.node.which,
      this.node.whichIndex,
    );
    const append = (this.node.mode ?? "append") === "append";
    // As with producers: an unreachable store is retried for as long as it takes (during shutdown, maxTries
    // more times, then the messages stay unacknowledged); other failures are dead-lettered after maxTries.
    let tries = 0;
    let downStreak = 0;
    let triesSinceStop = 0;
    for (;;) {
      try {
        await this.writeOnce(store, codec, g.key, selected, append);
        return [];
      } catch (err) {
        const down = isGeoWatchError(err) && (err.code === "CONNECT" || err.code === "TIMEOUT" || err.code === "CLOSED");
        if (down) {
          downStreak++;
          if (this.o.signal.aborted && ++triesSinceStop >= this.o.maxTries) {
            const reason = `[${this.node.name}] store unreachable at shutdown: ${reasonOf(err)}`;
            return g.messages.map((message) => ({ reason, message, undelivered: true }));
          }
        } else if (isPermanent(err)) {
          // Bad data or config, a refusal, an unsupported operation: the same write fails again, so no retries.
          const reason = `[${this.node.name}] store write to "${g.key}" failed (not retried: ${isGeoWatchError(err) ? err.code : "permanent"}): ${reasonOf(err)}`;
          return g.messages.map((message) => ({ reason, message }));
        } else if (++tries >= this.o.maxTries) {
          const reason = `[${this.node.name}] store write to "${g.key}" failed after ${tries} attempts: ${reasonOf(err)}`;
          return g.messages.map((message) => ({ reason, message }));
        }
        this.o.onRetry(g.messages.length);
        this.o.logger.warn(down ? "store unreachable, retrying" : "retrying store write", { store: this.node.name, key: g.key, error: reasonOf(err) });
        await sleep(backoffMs(down ? downStreak : tries, this.o.retryBaseMs, this.o.retryMaxMs));
      }
    }
  }

  private async writeOnce(store: Store, codec: Codec | undefined, key: string, values: unknown[], append: boolean): Promise<void> {
    const contentType = codec?.contentType ?? lines.contentType;
    const appendable = codec ? codec.appendable === true || (!codec.pack && !codec.unpack) : true;
    if (!append) {
      await store.write({ key, body: packWith(codec, values), contentType, append: false });
    } else if (store.capabilities?.append && appendable) {
      await store.write({ key, body: packWith(codec, values), contentType, append: true });
    } else if (store.read) {
      // The codec's packing is not byte-appendable (a FeatureCollection): read, merge, rewrite.
      const existing = await store.read(key);
      const merged = existing === undefined || payloadText(existing).trim() === "" ? values : unpackWith(codec, existing).concat(values);
      await store.write({ key, body: packWith(codec, merged), contentType, append: false });
    } else {
      throw new GeoWatchError("UNSUPPORTED", `store "${this.node.name}" cannot append (no append or read capability); use mode: snapshot`, {
        backend: this.node.backend,
      });
    }
  }
}
