/**
 * kafkajs 2.2.4, its last release (2022; the project is unmaintained), with its hot paths fixed, loaded through
 * `loadKafkajs()`. Applied to that version only, once per process; any other version is loaded as it is.
 *
 * kafkajs is CommonJS and binds its internal modules at load (`require` at the top of each file), so module-level
 * functions cannot be patched afterwards. Before kafkajs is first required, the backend puts its own
 * implementations of a few internal modules into `require.cache` under their real file names; kafkajs' `require`
 * then finds them there. They have the same exports and produce the same bytes (tests compare them with kafkajs'
 * originals). A module some other code already loaded is left alone. Class methods are patched on the prototype.
 */
import Module, { createRequire } from "node:module";
import { dirname } from "node:path";
import type { Logger } from "@geowatch/core";
import { makeRecordBatchDecoder } from "./kafkajs/decode.js";
import { makeRecord, makeRecordBatch } from "./kafkajs/encode.js";
import { groupMessagesPerPartition } from "./kafkajs/group.js";
import type { EncoderClass, EncoderLike, KafkajsInternals } from "./kafkajs/internals.js";
import { makeBatch } from "./kafkajs/batch.js";
import { makeProduceV3, makeRequest } from "./kafkajs/produce.js";

type KafkajsModule = typeof import("kafkajs");

interface RequestQueueLike {
  pending: unknown[];
  throttledUntil: number;
  scheduleCheckPendingRequests(): void;
}

/** kafkajs' own encoder methods as they were before the fix, for the equivalence test. */
export const kafkajsOriginals: {
  Encoder?: EncoderClass;
  writeUVarInt?: EncoderLike["writeUVarInt"];
  writeVarLong?: EncoderLike["writeVarLong"];
  sizeOfVarLong?: (value: unknown) => number;
} = {};

/** The internal modules replaced through `require.cache`, relative to kafkajs' package directory. */
export const SEEDED = [
  "src/producer/groupMessagesPerPartition.js",
  "src/protocol/recordBatch/record/v0/index.js",
  "src/protocol/recordBatch/v0/index.js",
  "src/protocol/recordBatch/v0/decoder.js",
  "src/consumer/batch.js",
  "src/protocol/requests/produce/v3/request.js",
  "src/protocol/request.js",
] as const;

const load = createRequire(import.meta.url);

/** What `loadKafkajs` did: the version found, and which replacements took. */
export const kafkajsStatus: { version?: string; fixed: boolean; seeded: string[]; skipped: string[]; note?: string } = {
  fixed: false,
  seeded: [],
  skipped: [],
};

let applied = false;
let reported = false;
let kafkajs: KafkajsModule | undefined;

/** kafkajs' `Encoder.nextPowerOfTwo`. */
const nextPowerOfTwo = (v: number) => 1 << (31 - Math.clz32(v) + 1);

/** An int32 number, whose zigzag encoding fits 32 bits: what a record's timestamp delta almost always is. */
const isInt32 = (v: unknown): v is number => typeof v === "number" && (v | 0) === v;

/** Puts `exports` into the require cache as the already loaded module `file`, unless something loaded it first. */
function seed(file: string, exports: unknown): boolean {
  if (load.cache[file]) return false;
  const m = new Module(file);
  m.filename = file;
  m.loaded = true;
  m.exports = exports;
  m.paths = (Module as unknown as { _nodeModulePaths(dir: string): string[] })._nodeModulePaths(dirname(file));
  load.cache[file] = m;
  return true;
}

/**
 * 1. The request queue re-arms a timer for `throttledUntil - Date.now()` ms after every request, even with nothing
 *    pending: a negative delay (about -Date.now() while never throttled), so Node runs it after 1 ms, for ever, on
 *    every connection (tulios/kafkajs#1704, #1751), and prints a `TimeoutNegativeWarning`. With nothing pending
 *    and no throttle there is nothing to check: a request that has to wait schedules the check itself (`push`).
 * 2. The encoder wrote every varint through a new array and `Buffer.from`, every varlong through a chain of
 *    BigInt-backed Longs; the same bytes are written in place (varlongs only for int32 numbers). It grows its
 *    buffer without zero-filling it.
 * 3. Module-level hot paths, seeded into `require.cache` (see the file comment): record, record batch and produce
 *    request encoding, the request frame, CRC32C, grouping a request's records by partition, record batch decoding,
 *    the consumer's batch filtering.
 */
function apply(): void {
  const pkgFile = load.resolve("kafkajs/package.json");
  const pkg = load(pkgFile) as { version?: string };
  kafkajsStatus.version = pkg.version;
  if (pkg.version !== "2.2.4") {
    kafkajsStatus.note = `kafkajs ${pkg.version ?? "(unknown version)"} is used as it is: the fixes are for 2.2.4 only`;
    return;
  }
  const root = dirname(pkgFile);
  const at = (rel: string) => `${root}/${rel}`;
  const files = SEEDED.map(at);
  if (files.some((f) => load.cache[f] !== undefined)) {
    kafkajsStatus.note = "kafkajs was loaded before @geowatch/kafka: the internal modules already loaded keep kafkajs' own code";
  }
  // None of these requires a module that is replaced, so loading them here does not bind kafkajs' originals.

  const Encoder = load(at("src/protocol/encoder.js")) as EncoderClass;
  const internals: KafkajsInternals = {
    Encoder,
    Decoder: load(at("src/protocol/decoder.js")),
    Long: load(at("src/utils/long.js")),
    compression: load(at("src/protocol/message/compression/index.js")),
    RecordDecoder: load(at("src/protocol/recordBatch/record/v0/decoder.js")),
    HeaderDecoder: load(at("src/protocol/recordBatch/header/v0/decoder.js")),
    KafkaJSPartialMessageError: (load(at("src/errors.js")) as { KafkaJSPartialMessageError: KafkajsInternals["KafkaJSPartialMessageError"] }).KafkaJSPartialMessageError,
    ...(() => {
      const t = load(at("src/protocol/timestampTypes.js")) as { LOG_APPEND_TIME: number; CREATE_TIME: number };
      return { LOG_APPEND_TIME: t.LOG_APPEND_TIME, CREATE_TIME: t.CREATE_TIME };
    })(),
  };
  const Record = makeRecord(Encoder);
  const recordBatch = makeRecordBatch(internals);
  const apiKeys = load(at("src/protocol/requests/apiKeys.js")) as { Produce: number };
  const impls: unknown[] = [
    groupMessagesPerPartition,
    Record,
    recordBatch.module,
    makeRecordBatchDecoder(internals),
    makeBatch(internals.Long, load(at("src/consumer/filterAbortedMessages.js"))),
    makeProduceV3(internals, Record, recordBatch.encodeBatch, apiKeys.Produce),
    makeRequest(Encoder),
  ];
  files.forEach((f, i) => (seed(f, impls[i]) ? kafkajsStatus.seeded : kafkajsStatus.skipped).push(SEEDED[i]!));

  const RequestQueue = load(at("src/network/requestQueue/index.js")) as { prototype: RequestQueueLike };
  const schedule = RequestQueue.prototype.scheduleCheckPendingRequests;
  const { writeVarLong, writeUVarInt } = Encoder.prototype;
  const sizeOfVarLong = Encoder.sizeOfVarLong.bind(Encoder);
  if (typeof schedule !== "function" || typeof writeVarLong !== "function" || typeof writeUVarInt !== "function") return;
  Object.assign(kafkajsOriginals, { Encoder, writeUVarInt, writeVarLong, sizeOfVarLong });

  RequestQueue.prototype.scheduleCheckPendingRequests = function (this: RequestQueueLike) {
    if (this.pending.length === 0 && !(this.throttledUntil > Date.now())) return;
    schedule.call(this);
  };

  /** Unsigned LEB128 of the value's low 32 bits (kafkajs' semantics), at most 5 bytes. */
  const putUVarInt = (e: EncoderLike, value: number) => {
    e.ensureAvailable(5);
    const buf = e.buf;
    let o = e.offset;
    let v = value;
    while ((v & 0xffffff80) !== 0) {
      buf[o++] = (v & 0x7f) | 0x80;
      v >>>= 7;
    }
    buf[o++] = v & 0x7f;
    e.offset = o;
    return e;
  };
  Encoder.prototype.writeUVarInt = function (this: EncoderLike, value: number) {
    return putUVarInt(this, value);
  };
  Encoder.prototype.writeVarLong = function (this: EncoderLike, value: unknown) {
    // For an int32 the 64-bit zigzag equals the 32-bit one read as unsigned.
    if (isInt32(value)) return putUVarInt(this, ((value << 1) ^ (value >> 31)) >>> 0);
    return writeVarLong.call(this, value);
  };
  // Growing an encoder allocated a zero-filled buffer and copied into it; only bytes below `offset` are ever read
  // (`buffer` is `buf.slice(0, offset)`) and all of those are written, so the zeroing bought nothing.
  Encoder.prototype.ensureAvailable = function (this: EncoderLike, length: number) {
    if (this.offset + length <= this.buf.length) return;
    const grown = Buffer.allocUnsafe(nextPowerOfTwo(this.offset + length));
    this.buf.copy(grown, 0, 0, this.offset);
    this.buf = grown;
  };
  Encoder.sizeOfVarLong = (value: unknown) => {
    if (!isInt32(value)) return sizeOfVarLong(value);
    let v = ((value << 1) ^ (value >> 31)) >>> 0;
    let bytes = 1;
    while (v >= 0x80) {
      bytes++;
      v >>>= 7;
    }
    return bytes;
  };
  kafkajsStatus.fixed = true;
}

/**
 * Applies the fixes to the kafkajs this package depends on, once (2.2.4 only; any other version is left as it is
 * and, given a logger, says so once at debug). The backend calls it before it loads kafkajs. Code that uses kafkajs
 * itself in the same process can call it before its own first `import("kafkajs")` to get the same fixes (the request
 * queue's 1 ms timer loop behind `TimeoutNegativeWarning`, the encoders and decoders); kafkajs loaded earlier keeps
 * the internal modules it already bound.
 */
export function fixKafkajs(logger?: Logger): void {
  if (!applied) {
    applied = true;
    try {
      apply();
    } catch (err) {
      // A different layout of kafkajs: leave it as it is.
      kafkajsStatus.note = `kafkajs is used as it is: its internals were not as expected (${String(err)})`;
    }
  }
  if (!reported && logger && kafkajsStatus.note !== undefined) {
    reported = true;
    logger.debug(`kafka: ${kafkajsStatus.note}`, { seeded: kafkajsStatus.seeded, skipped: kafkajsStatus.skipped });
  }
}

/** kafkajs, loaded after the fixes are in place. */
export function loadKafkajs(logger?: Logger): KafkajsModule {
  fixKafkajs(logger);
  kafkajs ??= load("kafkajs") as KafkajsModule;
  return kafkajs;
}
