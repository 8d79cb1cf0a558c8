import { defineBackend } from "@geowatch/core";
import { sqsConsumer } from "./consumer.js";
import { sqsConsumerSchema, sqsProducerSchema } from "./options.js";
import { sqsProducer } from "./producer.js";

/** The SQS backend: `backend: sqs` in config. */
export const sqsBackend = defineBackend({
  name: "sqs",
  description: "Amazon SQS queues: long-polling consumer that deletes only acknowledged messages, batching producer",
  consumer: { options: sqsConsumerSchema, create: (o, ctx) => sqsConsumer(o, { logger: ctx.logger }) },
  producer: { options: sqsProducerSchema, create: (o) => sqsProducer(o) },
});

export { sqsConsumer } from "./consumer.js";
export type { SqsConsumer, SqsHandle } from "./consumer.js";
export { sqsProducer } from "./producer.js";
export type { SqsProducer } from "./producer.js";
export { KEY_ATTRIBUTE, ENCODING_ATTRIBUTE } from "./message.js";
export { SQS_MAX_MESSAGE_BYTES, sqsConsumerSchema, sqsProducerSchema } from "./options.js";
export type { SqsConsumerOptions, SqsProducerOptions } from "./options.js";
