import { defineBackend } from "@geowatch/core";
import { snsProducerSchema } from "./options.js";
import { snsProducer } from "./producer.js";

/** The SNS backend: `backend: sns` in config (producer only). */
export const snsBackend = defineBackend({
  name: "sns",
  description: "Amazon SNS topics: batched publishing, subject and body from the template codec, metadata as message attributes",
  producer: { options: snsProducerSchema, create: (o) => snsProducer(o) },
});

export { snsProducer } from "./producer.js";
export type { SnsProducer } from "./producer.js";
export { KEY_ATTRIBUTE, ENCODING_ATTRIBUTE } from "./message.js";
export { SNS_MAX_MESSAGE_BYTES, snsProducerSchema } from "./options.js";
export type { SnsProducerOptions } from "./options.js";
