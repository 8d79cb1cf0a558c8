import { defineBackend } from "@geowatch/core";
import { createAmqpConsumer } from "./consumer.js";
import { createAmqpProducer } from "./producer.js";
import { amqpConsumerSchema, amqpProducerSchema, checkProducer } from "./options.js";

/** The AMQP 0-9-1 (RabbitMQ) backend: `backend: amqp` in config. */
export const amqpBackend = defineBackend({
  name: "amqp",
  description: "AMQP 0-9-1 (RabbitMQ): a queue consumer with acks and an exchange producer with publisher confirms",
  consumer: {
    options: amqpConsumerSchema,
    create: (o, ctx) => createAmqpConsumer(o, { logger: ctx.logger, name: ctx.name, secret: (ref) => ctx.secret(ref) }),
  },
  producer: {
    options: amqpProducerSchema,
    create: (o, ctx) => createAmqpProducer(o, { logger: ctx.logger, name: ctx.name, secret: (ref) => ctx.secret(ref) }),
    check: (o, use) => checkProducer(o, use),
  },
});

export { amqpConsumer, KEY_HEADER } from "./consumer.js";
export type { AmqpHandle } from "./consumer.js";
export { amqpProducer, routingKeyFor } from "./producer.js";
export { amqpOptionsSchema, amqpConsumerSchema, amqpProducerSchema } from "./options.js";
export type { AmqpOptions } from "./options.js";
export type { AmqpContext } from "./connection.js";
