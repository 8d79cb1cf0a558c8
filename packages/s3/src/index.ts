import { defineBackend } from "@geowatch/core";
import { s3Consumer } from "./consumer.js";
import { checkConsumer, checkStore, s3ConsumerSchema, s3StoreSchema } from "./options.js";
import { s3Store } from "./store.js";

/** The S3 backend: `backend: s3` in config. */
export const s3Backend = defineBackend({
  name: "s3",
  description: "Amazon S3 (or a compatible server): a store with one object per appended flush, and a source of new objects under a prefix with a checkpoint",
  consumer: { options: s3ConsumerSchema, create: (o, ctx) => s3Consumer(o, { logger: ctx.logger }), check: (o) => checkConsumer(o) },
  store: { options: s3StoreSchema, create: (o) => s3Store(o), check: (o) => checkStore(o) },
});

export { s3Consumer } from "./consumer.js";
export { s3Store } from "./store.js";
export type { S3Store } from "./store.js";
export { s3ConsumerSchema, s3StoreSchema } from "./options.js";
export type { S3ConsumerOptions, S3StoreOptions } from "./options.js";
