import { defineBackend } from "@geowatch/core";
import { createKafkaConsumer } from "./consumer.js";
import { createKafkaProducer } from "./producer.js";
import { checkConsumer, checkProducer, kafkaConsumerSchema, kafkaProducerSchema } from "./options.js";

/** The Kafka backend: `backend: kafka` in config. */
export const kafkaBackend = defineBackend({
  name: "kafka",
  description: "Apache Kafka: consumer groups with committed offsets and an idempotent producer",
  consumer: {
    options: kafkaConsumerSchema,
    create: (o, ctx) => createKafkaConsumer(o, { logger: ctx.logger, secret: (ref) => ctx.secret(ref) }),
    check: (o) => checkConsumer(o),
  },
  producer: {
    options: kafkaProducerSchema,
    create: (o, ctx) => createKafkaProducer(o, { logger: ctx.logger, secret: (ref) => ctx.secret(ref) }),
    check: (o, use) => checkProducer(o, use),
  },
});

export { kafkaConsumer } from "./consumer.js";
export { kafkaProducer } from "./producer.js";
export { fixKafkajs } from "./kafkajs-fixes.js";
export { kafkaOptionsSchema, kafkaConsumerSchema, kafkaProducerSchema } from "./options.js";
export type { KafkaOptions, KafkaSaslOptions, KafkaTlsOptions } from "./options.js";
export type { KafkaConsumerDeps } from "./consumer.js";
export type { KafkaProducerDeps } from "./producer.js";
