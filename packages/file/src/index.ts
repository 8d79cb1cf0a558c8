import type { BackendDefinition } from "@geowatch/core";
import { fileConsumer } from "./consumer.js";
import { fileProducer } from "./producer.js";
import { fileStore } from "./store.js";
import { fileAnySchema, fileOptionDocs, problemsOf } from "./options.js";
import type { FileConsumerOptions, FileProducerOptions, FileStoreOptions } from "./options.js";

/** The file backend: `backend: file` in config. */
export const fileBackend: BackendDefinition = {
  name: "file",
  consumer: (options, ctx) => fileConsumer(options as unknown as FileConsumerOptions, { logger: ctx.logger }),
  producer: (options) => fileProducer(options as unknown as FileProducerOptions),
  store: (options) => fileStore(options as unknown as FileStoreOptions),
  options: fileOptionDocs,
  validate: (options) => problemsOf(fileAnySchema, options),
};

export { fileConsumer } from "./consumer.js";
export { fileProducer } from "./producer.js";
export { fileStore } from "./store.js";
export { toLine, fromLine } from "./line.js";
export { fileConsumerSchema, fileProducerSchema, fileStoreSchema } from "./options.js";
export type { FileConsumerOptions, FileProducerOptions, FileStoreOptions } from "./options.js";
