import { defineBackend } from "@geowatch/core";
import { createFileConsumer } from "./consumer.js";
import { createFileProducer } from "./producer.js";
import { createFileStore } from "./store.js";
import { fileConsumerSchema, fileProducerSchema, fileStoreSchema } from "./options.js";

/** The file backend: `backend: file` in config. */
export const fileBackend = defineBackend({
  name: "file",
  description: "an NDJSON file channel (append, follow with committed offsets) and a directory store",
  consumer: { options: fileConsumerSchema, create: (o, ctx) => createFileConsumer(o, { logger: ctx.logger }) },
  producer: { options: fileProducerSchema, create: (o) => createFileProducer(o) },
  store: { options: fileStoreSchema, create: (o) => createFileStore(o) },
});

export { fileConsumer } from "./consumer.js";
export { fileProducer } from "./producer.js";
export { fileStore } from "./store.js";
export { toLine, fromLine } from "./line.js";
export { fileConsumerSchema, fileProducerSchema, fileStoreSchema } from "./options.js";
export type { FileConsumerOptions, FileProducerOptions, FileStoreOptions } from "./options.js";
