import { defineBackend, defineStage } from "@geowatch/core";
import { s3Fetch } from "./fetch.js";
import { s3Consumer } from "./consumer.js";
import { checkCodec, checkConsumer, checkStore, s3ConsumerSchema, s3FetchSchema, s3StoreSchema } from "./options.js";
import { s3Store } from "./store.js";

/** The S3 backend: `backend: s3` in config. */
export const s3Backend = defineBackend({
  name: "s3",
  description: "Amazon S3 (or a compatible server): a store with one object per appended flush, and a source of new objects under a prefix with a checkpoint",
  consumer: { options: s3ConsumerSchema, create: (o, ctx) => s3Consumer(o, { logger: ctx.logger }), check: (o) => checkConsumer(o) },
  store: { options: s3StoreSchema, create: (o) => s3Store(o), check: (o) => checkStore(o) },
});

/** The `s3_fetch` stage: S3 event notifications (from an SQS or SNS consumer) become the objects' contents. */
export const s3FetchStage = defineStage({
  name: "s3_fetch",
  description: "turns S3 event notifications (S3 -> SQS/SNS) into the contents of the objects they name",
  options: s3FetchSchema,
  create: (o, ctx) => s3Fetch(o, { logger: ctx.logger }),
  check: (o) => checkCodec("codec", o.codec),
});

export { s3Consumer } from "./consumer.js";
export { s3Fetch, s3EventObjects } from "./fetch.js";
export type { S3EventObject } from "./fetch.js";
export { s3Store } from "./store.js";
export type { S3Store } from "./store.js";
export { s3ConsumerSchema, s3FetchSchema, s3StoreSchema } from "./options.js";
export type { S3ConsumerOptions, S3FetchOptions, S3StoreOptions } from "./options.js";
