export type {
  Payload, Metadata, Envelope, Position, InRecord, OutRecord, SendResult, Message,
  ConsumerCapabilities, ReceiveOptions, BackendHealth, Consumer, ProducerCapabilities, Producer,
  StoreCapabilities, StoreWrite, Store, Codec, Mapping, Role, Logger, BackendContext,
  BackendDefinition, DeadLetter, StageOutput, Stage,
} from "./types.js";
export { GeoWatchError, isGeoWatchError, reasonOf } from "./errors.js";
export type { ErrorCode, GeoWatchErrorOptions } from "./errors.js";
export { Broker, envelopeMetadata } from "./broker.js";
export type { BrokerOptions, BrokerStats, BrokerHooks, BrokerObserver, ConsumerNode, ProducerNode, RunOptions } from "./broker.js";
export { StoreSink, packWith, unpackWith, selectWhich } from "./store-sink.js";
export type { StoreOutNode, Which } from "./store-sink.js";
export { readStoreIn } from "./store-source.js";
export type { StoreInNode } from "./store-source.js";
export { AckTracker } from "./ack-tracker.js";
export { guardConsumer, guardProducer, guardStore } from "./managed.js";
export type { ManagedOptions, ManagedConsumer, ManagedProducer, ManagedStore, Lifecycle, LifecycleState } from "./managed.js";
export { memoryChannel, namedMemoryChannel, memoryBackend } from "./backends/memory.js";
export type { MemoryChannel, MemoryChannelOptions } from "./backends/memory.js";
export { jsonLogger, silentLogger, redact } from "./logger.js";
export type { JsonLoggerOptions, LogLevel } from "./logger.js";
export { renderKey } from "./template.js";
export { sleep, waitForWake, backoffMs, withTimeout, payloadText, payloadBytes, payloadSize, stableStringify, getPath } from "./util.js";
export {
  plainCodec, jsonCodec, ndjsonCodec, geojsonCodec, validateGeoJSON, tsvCodec, csvCodec, codecRegistry, getCodec,
} from "./codecs/index.js";
export type {
  GeoJSONObject, GeoJSONFeature, GeoJSONValue, GeoJSONProblem, TsvOptions, CsvOptions, FieldRecord, CodecFactory,
} from "./codecs/index.js";
export { Runtime, BACKEND_PACKAGES, STAGE_PACKAGES } from "./runtime.js";
export type { RuntimeOptions, StageFactory, NodeHealth, Provisioned } from "./runtime.js";
export {
  ConfigError, configSchema, configJsonSchema, checkConfigShape, interpolate, camelKeys, formatPath, zodIssues,
} from "./config.js";
export type { ConfigIssue, GeoWatchConfig, BrokerConfig, NodeConfig, StoreConfig, StageConfig } from "./config.js";
export { templateCodec, compileTemplate, escapeTemplateText, TEMPLATE_FILTERS } from "./codecs/index.js";
export type { TemplateCodec, TemplateCodecOptions, CompiledTemplate, CompileTemplateOptions, TemplateEscape } from "./codecs/index.js";
export { optionProblems, parseOptions } from "./options.js";
export type { OptionProblem, OptionSchema } from "./options.js";
