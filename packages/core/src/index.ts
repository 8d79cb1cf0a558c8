// What a backend author and an app need; everything else stays internal.

// Contracts.
export type {
  Payload, Metadata, Envelope, Position, InRecord, OutRecord, SendResult, Message,
  ConsumerCapabilities, ReceiveOptions, BackendHealth, Consumer, ProducerCapabilities, Producer,
  StoreCapabilities, StoreWrite, Store, Codec, Mapping, Logger, BackendContext,
  DeadLetter, StageOutput, Stage,
} from "./types.js";
export { GeoWatchError, isGeoWatchError, isPermanent, reasonOf } from "./errors.js";
export type { ErrorCode, GeoWatchErrorOptions } from "./errors.js";

// Fetching URLs that users or requests give.
export { urlPolicy, checkUrl, fetchWithPolicy, isPrivateAddress } from "./net.js";
export { xmlStructureError, lineAt } from "./xml-structure.js";
export type { XmlStructure, XmlStructureOptions, XmlStructureProblem } from "./xml-structure.js";
export type { UrlPolicy, UrlPolicyOptions, FetchInit, FetchPolicyOptions } from "./net.js";

// Writing a backend or a stage.
export { defineBackend, defineCodec, defineStage, isBackendDefinition, isCodecDefinition, isStageDefinition } from "./define.js";
export type {
  BackendDefinition, BackendSpec, CodecDefinition, CodecSpec, RoleSpec, RoleDefinition, StageDefinition, StageSpec, NodeUse, OptionDoc, OptionsSchema, ParsedOptions,
} from "./define.js";
export { parseOptions, optionProblems } from "./options.js";
export type { OptionProblem, OptionSchema } from "./options.js";
export { guardConsumer, guardProducer, guardStore } from "./managed.js";
export type { ManagedOptions, ManagedConsumer, ManagedProducer, ManagedStore, Lifecycle, LifecycleState } from "./managed.js";
export { sleep, waitForWake, backoffMs, withTimeout, payloadText, payloadBytes, payloadSize, readSecretFile } from "./util.js";
export { LeaseKeeper, type LeaseKeeperOptions } from "./lease.js";

// Running brokers.
export { Broker } from "./broker.js";
export type { BrokerOptions, BrokerStats, BrokerHooks, BrokerObserver, ConsumerNode, ProducerNode, RunOptions } from "./broker.js";
export type { StoreOutNode, Which } from "./store-sink.js";
export type { StoreInNode } from "./store-source.js";
export { packWith, unpackWith } from "./store-sink.js";
export { Runtime } from "./runtime.js";
export type { RuntimeOptions, NodeHealth, Provisioned } from "./runtime.js";
export type { GeoWatchPackage, Importer } from "./resolve.js";
export { ConfigError, configJsonSchema, checkForbiddenKeys } from "./config.js";
export type { ConfigIssue, GeoWatchConfig, BrokerConfig, NodeConfig, StoreConfig, StageConfig } from "./config.js";
export { memoryChannel, namedMemoryChannel, memoryBackend } from "./backends/memory.js";
export type { MemoryChannel, MemoryChannelOptions } from "./backends/memory.js";
export { jsonLogger, silentLogger, redact } from "./logger.js";
export type { JsonLoggerOptions, LogLevel } from "./logger.js";

// Key templates (`{metadata.track}`): own properties only, prototype paths refused.
export { renderKey, renderOptional, checkKeyTemplate } from "./template.js";

// Codecs.
export {
  plainCodec, jsonCodec, ndjsonCodec, geojsonCodec, validateGeoJSON, isValidatedGeoJSON, tsvCodec, csvCodec, templateCodec, codecRegistry, getCodec,
} from "./codecs/index.js";
export type {
  GeoJSONObject, GeoJSONFeature, GeoJSONValue, GeoJSONProblem, TsvOptions, CsvOptions, FieldRecord, CodecFactory,
  TemplateCodec, TemplateCodecOptions,
} from "./codecs/index.js";
