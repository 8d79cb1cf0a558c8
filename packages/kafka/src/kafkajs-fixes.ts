/**
 * Two fixes to kafkajs 2.2.4, its last release (2022; the project is unmaintained), applied to that version only,
 * once, when the backend builds its first client. Other kafkajs clients in the process share them.
 */
import { createRequire } from "node:module";

interface RequestQueueLike {
  pending: unknown[];
  throttledUntil: number;
  scheduleCheckPendingRequests(): void;
}

interface EncoderLike {
  buf: Buffer;
  offset: number;
  ensureAvailable(length: number): void;
  writeUVarInt(value: number): EncoderLike;
  writeVarLong(value: unknown): EncoderLike;
}

interface EncoderClass {
  new (): EncoderLike;
  prototype: EncoderLike;
  sizeOfVarLong(value: unknown): number;
}

/** kafkajs' own encoder methods as they were before the fix, for the equivalence test. */
export const kafkajsOriginals: {
  Encoder?: EncoderClass;
  writeUVarInt?: EncoderLike["writeUVarInt"];
  writeVarLong?: EncoderLike["writeVarLong"];
  sizeOfVarLong?: (value: unknown) => number;
} = {};

let applied = false;

/** An int32 number, whose zigzag encoding fits 32 bits: what a record's timestamp delta almost always is. */
const isInt32 = (v: unknown): v is number => typeof v === "number" && (v | 0) === v;

/**
 * 1. The request queue re-arms a timer for `throttledUntil - Date.now()` ms after every request, even with nothing
 *    pending: a negative delay, so Node runs it after 1 ms, for ever, on every connection (tulios/kafkajs#1704,
 *    #1751). It cost an idle consumer and producer ~35 ms of CPU per second, and Node 24 prints a
 *    `TimeoutNegativeWarning`. With nothing pending and no throttle there is nothing to check: a request that has
 *    to wait schedules the check itself (`push`).
 * 2. The record encoder allocates an array and a Buffer for every varint and a chain of BigInt-backed Long objects
 *    for every varlong (five varints and two varlong computations per produced record). The same bytes are written
 *    in place; varlongs take that path only for int32 numbers, anything else goes to kafkajs' own code.
 */
export function fixKafkajs(): void {
  if (applied) return;
  applied = true;
  try {
    const load = createRequire(import.meta.url);
    const pkg = load("kafkajs/package.json") as { version?: string };
    if (pkg.version !== "2.2.4") return;
    const RequestQueue = load("kafkajs/src/network/requestQueue/index.js") as { prototype: RequestQueueLike };
    const Encoder = load("kafkajs/src/protocol/encoder.js") as EncoderClass;
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
  } catch {
    // A different layout of kafkajs: leave it as it is.
  }
}
