import { defineBackend } from "@geowatch/core";
import { feedProducerSchema } from "./options.js";
import { feedProducer } from "./producer.js";

/** The feed backend: `backend: feed` in config. */
export const feedBackend = defineBackend({
  name: "feed",
  description: "per-user Atom/RSS feeds with GeoRSS on node:sqlite, served over HTTP with per-user tokens",
  producer: { options: feedProducerSchema, create: (o, ctx) => feedProducer(o, { logger: ctx.logger }) },
});

export { feedProducer } from "./producer.js";
export { feedServer, feedApp } from "./server.js";
export type { FeedServer } from "./server.js";
export { openFeedDb } from "./db.js";
export type { FeedDb, FeedEntry, StoredEntry, EntryGeo } from "./db.js";
export { entryOf, geoOfGeometry, geoOfBbox } from "./entry.js";
export { escapeXml } from "./xml.js";
export { feedProducerSchema, feedServerSchema } from "./options.js";
export type { FeedProducerOptions, FeedServerOptions } from "./options.js";
