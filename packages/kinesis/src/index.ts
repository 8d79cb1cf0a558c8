import { defineBackend } from "@geowatch/core";
import { kinesisConsumer } from "./consumer.js";
import { checkConsumer, kinesisConsumerSchema, kinesisProducerSchema } from "./options.js";
import { kinesisProducer } from "./producer.js";

/** The Kinesis backend: `backend: kinesis` in config. */
export const kinesisBackend = defineBackend({
  name: "kinesis",
  description: "Amazon Kinesis Data Streams: every shard with resharding, checkpoints on acknowledgement (SQLite or a DynamoDB lease table), PutRecords with per-record results",
  consumer: {
    options: kinesisConsumerSchema,
    create: (o, ctx) => kinesisConsumer(o, { logger: ctx.logger }),
    check: (o) => checkConsumer(o),
  },
  producer: {
    options: kinesisProducerSchema,
    create: (o, ctx) => kinesisProducer(o, { logger: ctx.logger }),
  },
});

export { kinesisConsumer } from "./consumer.js";
export type { KinesisConsumerDeps } from "./consumer.js";
export { kinesisProducer, MAX_RECORDS, MAX_CALL_BYTES, MAX_RECORD_BYTES } from "./producer.js";
export type { KinesisProducerDeps } from "./producer.js";
export { kinesisConsumerSchema, kinesisProducerSchema, SHARD_ITERATOR_TYPES } from "./options.js";
export type { KinesisConsumerOptions, KinesisProducerOptions } from "./options.js";
