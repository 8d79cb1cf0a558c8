import type { BackendDefinition } from "@geowatch/core";
import { queueConsumer } from "./consumer.js";
import { problemsOf, queueAnySchema, queueOptionDocs } from "./options.js";
import type { QueueConsumerOptions, QueueProducerOptions } from "./options.js";
import { queueProducer } from "./producer.js";

export { queueConsumer, DEAD_REASON_HEADER } from "./consumer.js";
export type { QueueConsumer, QueueHandle } from "./consumer.js";
export { queueProducer } from "./producer.js";
export { openQueueDatabase, queueStats } from "./store.js";
export type { QueueDatabase, QueueStats } from "./store.js";
export {
  DEFAULT_QUEUE_PATH,
  queueAnySchema,
  queueConsumerSchema,
  queueOptionDocs,
  queueProducerSchema,
} from "./options.js";
export type { QueueConsumerOptions, QueueProducerOptions } from "./options.js";

/** The queue backend, as the runtime provisions it from config (`backend: queue`). */
export const queueBackend: BackendDefinition = {
  name: "queue",
  consumer: (options, ctx) => queueConsumer(options as unknown as QueueConsumerOptions, { logger: ctx.logger }),
  producer: (options) => queueProducer(options as unknown as QueueProducerOptions),
  options: queueOptionDocs,
  validate: (options) => problemsOf(queueAnySchema, options),
};
