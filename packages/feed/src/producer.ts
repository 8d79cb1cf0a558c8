import { resolve } from "node:path";
import { GeoWatchError, isGeoWatchError, reasonOf } from "@geowatch/core";
import type { Logger, OutRecord, Producer, SendResult } from "@geowatch/core";
import { openFeedDb } from "./db.js";
import type { FeedDb, FeedEntry } from "./db.js";
import { entryOf } from "./entry.js";
import { feedProducerSchema, parseOptions } from "./options.js";
import type { FeedProducerOptions } from "./options.js";
import { feedServer } from "./server.js";
import type { FeedServer } from "./server.js";

/**
 * Puts each record in its recipient's feed (`metadata.recipient`, else the `user` option). One transaction
 * per batch, synchronous=FULL: an acknowledged send survives a crash. A redelivered record (same user and
 * `metadata.id`, or the same text) is not added twice.
 */
export function feedProducer(options: FeedProducerOptions, ctx: { logger?: Logger } = {}): Producer {
  const opts = parseOptions<FeedProducerOptions>(feedProducerSchema, options, "feed producer");
  const file = opts.db === ":memory:" ? opts.db : resolve(opts.db);
  const maxEntries = opts.maxEntries ?? 100;
  const rules = { user: opts.user, titleTemplate: opts.titleTemplate ?? "{actiontype} {targettype} {featuretype}", linkTemplate: opts.linkTemplate, now: () => new Date() };
  let db: FeedDb | undefined;
  let server: FeedServer | undefined;

  return {
    capabilities: { batching: true },
    async connect() {
      db ??= openFeedDb(file);
      if (opts.serve && !server && file !== ":memory:") {
        server = await feedServer({ ...opts.serve, db: file }, ctx);
        ctx.logger?.info("feed server listening", { url: server.url });
      }
    },
    async send(records: OutRecord[]): Promise<SendResult[]> {
      db ??= openFeedDb(file);
      const results: SendResult[] = [];
      const entries: FeedEntry[] = [];
      for (const r of records) {
        try {
          entries.push(entryOf(r, rules));
          results.push({ ok: true });
        } catch (err) {
          const error = isGeoWatchError(err) ? err : new GeoWatchError("ENCODE", reasonOf(err), { backend: "feed", cause: err });
          results.push({ ok: false, error, retryable: false });
        }
      }
      if (entries.length === 0) return results;
      try {
        db.add(entries, maxEntries);
      } catch (cause) {
        // SQLITE_BUSY and disk errors: the whole batch is retried by the broker.
        throw new GeoWatchError("SEND", `writing ${entries.length} feed entries to ${JSON.stringify(file)} failed`, { backend: "feed", cause, retryable: true });
      }
      return results;
    },
    async close() {
      const s = server;
      server = undefined;
      await s?.close();
      db?.close();
      db = undefined;
    },
  };
}
