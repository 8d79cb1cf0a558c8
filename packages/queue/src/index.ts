import { defineBackend } from "@geowatch/core";
import { createQueueConsumer } from "./consumer.js";
import { queueConsumerSchema, queueProducerSchema } from "./options.js";
import { createQueueProducer } from "./producer.js";

export { queueConsumer, DEAD_REASON_HEADER } from "./consumer.js";
export type { QueueConsumer, QueueHandle } from "./consumer.js";
export { queueProducer } from "./producer.js";
export { openQueueDatabase, queueStats } from "./store.js";
export type { QueueDatabase, QueueStats } from "./store.js";
export {
  DEFAULT_QUEUE_PATH,
  queueConsumerSchema,
  queueProducerSchema,
} from "./options.js";
export type { QueueConsumerOptions, QueueProducerOptions } from "./options.js";

/** The queue backend, as the runtime provisions it from config (`backend: queue`). */
export const queueBackend = defineBackend({
  name: "queue",
  description: "a durable queue on node:sqlite shared by processes on one machine: acks, leases, redelivery, dead queue",
  consumer: { options: queueConsumerSchema, create: (o, ctx) => createQueueConsumer(o, { logger: ctx.logger }) },
  producer: { options: queueProducerSchema, create: (o) => createQueueProducer(o) },
});
