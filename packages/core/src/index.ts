export type {
  Payload, Metadata, Envelope, Position, InRecord, OutRecord, SendResult, Message,
  ConsumerCapabilities, ReceiveOptions, Consumer, ProducerCapabilities, Producer,
  StoreCapabilities, StoreWrite, Store, Codec, Mapping, Role, Logger, BackendContext,
  BackendDefinition, DeadLetter, StageOutput, Stage,
} from "./types.js";
export { GeoWatchError, isGeoWatchError, reasonOf } from "./errors.js";
export type { ErrorCode, GeoWatchErrorOptions } from "./errors.js";
