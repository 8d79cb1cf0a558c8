import { defineBackend, defineCodec } from "@geowatch/core";
import { memcachedStoreSchema, tilerequestCodecSchema } from "./options.js";
import { createMemcachedStore } from "./store.js";
import { tilerequestCodec } from "./tilerequest.js";

/** The memcached backend: `backend: memcached` in config (a store). */
export const memcachedBackend = defineBackend({
  name: "memcached",
  description: "a memcached cache store: keys from a template, TTL per store and key pattern, atomic appends, read for stores_in",
  store: { options: memcachedStoreSchema, create: (o) => createMemcachedStore(o) },
});

/** The tilerequest codec: `codec: tilerequest` (or `{ name: tilerequest, options: { ttl: 3600 } }`). */
export const tilerequestCodecDefinition = defineCodec({
  name: "tilerequest",
  description: "map-tile request lines `{isodate};{source},{z},{x},{y},{ext}` (the original GeoWatch format), with a TTL",
  options: tilerequestCodecSchema,
  create: (o) => tilerequestCodec(o),
});

export { memcachedStore, createMemcachedStore } from "./store.js";
export type { MemcachedStore } from "./store.js";
export { tilerequestCodec, parseTileRequest, formatTileRequest, parseIsoDate } from "./tilerequest.js";
export type { TileRequest, TilerequestCodec } from "./tilerequest.js";
export { memcachedStoreSchema, tilerequestCodecSchema } from "./options.js";
export type { MemcachedStoreOptions, TilerequestCodecOptions } from "./options.js";
