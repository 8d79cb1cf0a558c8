import type { BackendDefinition } from "@geowatch/core";
import { amqpConsumer } from "./consumer.js";
import { amqpProducer } from "./producer.js";
import { amqpOptionDocs, validateAmqpOptions, type AmqpOptions } from "./options.js";

export { amqpConsumer, KEY_HEADER } from "./consumer.js";
export type { AmqpHandle } from "./consumer.js";
export { amqpProducer, routingKeyFor } from "./producer.js";
export { amqpOptionsSchema, validateAmqpOptions } from "./options.js";
export type { AmqpOptions } from "./options.js";
export type { AmqpContext } from "./connection.js";

/** The AMQP 0-9-1 (RabbitMQ) backend, for the runtime to provision from config (`backend: amqp`). */
export const amqpBackend: BackendDefinition = {
  name: "amqp",
  consumer: (options, ctx) => amqpConsumer(options as AmqpOptions, { logger: ctx.logger, name: ctx.name, secret: (ref) => ctx.secret(ref) }),
  producer: (options, ctx) => amqpProducer(options as AmqpOptions, { logger: ctx.logger, name: ctx.name, secret: (ref) => ctx.secret(ref) }),
  options: amqpOptionDocs,
  validate: validateAmqpOptions,
};
