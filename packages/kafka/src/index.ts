import type { BackendDefinition } from "@geowatch/core";
import { kafkaConsumer } from "./consumer.js";
import { kafkaProducer } from "./producer.js";
import { kafkaOptionDocs, kafkaOptionsSchema, problemsOf } from "./options.js";
import type { KafkaOptions } from "./options.js";

/** The Kafka backend: `backend: kafka` in config. */
export const kafkaBackend: BackendDefinition = {
  name: "kafka",
  consumer: (options, ctx) => kafkaConsumer(options as KafkaOptions, { logger: ctx.logger, secret: (ref) => ctx.secret(ref) }),
  producer: (options, ctx) => kafkaProducer(options as KafkaOptions, { logger: ctx.logger, secret: (ref) => ctx.secret(ref) }),
  options: kafkaOptionDocs,
  // The role is not known here: consumer-only rules (groupId, topics) are checked when the consumer is built.
  validate: (options) => problemsOf(kafkaOptionsSchema, options),
};

export { kafkaConsumer } from "./consumer.js";
export { kafkaProducer } from "./producer.js";
export { kafkaOptionsSchema } from "./options.js";
export type { KafkaOptions, KafkaSaslOptions, KafkaTlsOptions } from "./options.js";
export type { KafkaConsumerDeps } from "./consumer.js";
export type { KafkaProducerDeps } from "./producer.js";
