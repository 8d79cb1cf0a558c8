/**
 * Replacement for kafkajs 2.2.4's `protocol/recordBatch/v0/decoder` (the fetch path): the same records. kafkajs
 * decodes each record through a Buffer slice and a `new Decoder`, reads its timestamp delta as a chain of
 * BigInt-backed Long objects and builds its offset and timestamp strings by parsing the batch's first offset and
 * timestamp into new Longs. Here a well-formed record is read in place with number arithmetic where the values are
 * exact; anything else (huge deltas, records that overrun their length) goes through kafkajs' own record decoder.
 */
import type { DecoderLike, KafkajsInternals } from "./internals.js";

const TIMESTAMP_TYPE_FLAG_MASK = 0x8;
const TRANSACTIONAL_FLAG_MASK = 0x10;
const CONTROL_FLAG_MASK = 0x20;
const SAFE = Number.MAX_SAFE_INTEGER;

interface Context {
  firstOffset: string;
  firstTimestamp: string;
  maxTimestamp: string;
  timestampType: number;
  isControlBatch: boolean;
  magicByte: number;
}

/** kafkajs' header object: repeated keys collect into an array, in order (computed keys, as its spread makes). */
function headersReducer(obj: Record<string, unknown>, { key, value }: { key: string; value: unknown }): Record<string, unknown> {
  const prev = obj[key];
  return { ...obj, [key]: prev === undefined ? value : Array.isArray(prev) ? prev.concat([value]) : [prev, value] };
}

export function makeRecordBatchDecoder(k: KafkajsInternals) {
  const { Decoder, Long, compression, RecordDecoder, HeaderDecoder, KafkaJSPartialMessageError, LOG_APPEND_TIME, CREATE_TIME } = k;

  /**
   * Decodes one record at `d.offset` (its length varint first) and moves past it. Returns undefined, with
   * `d.offset` untouched, where the record is not one the fast path reads exactly.
   */
  const fastRecord = (d: DecoderLike, ctx: Context, firstOffset: number, firstTimestamp: number): object | undefined => {
    const buf = d.buffer;
    const limit = buf.length;
    let o = d.offset;
    // Varints as kafkajs' readVarInt computes them (32-bit arithmetic), at most 5 bytes.
    let b = 0;
    let r = 0;
    let s = 0;
    do {
      if (o >= limit || s > 28) return undefined;
      b = buf[o++]!;
      r += (b & 0x7f) << s;
      s += 7;
    } while (b >= 0x80);
    const length = (r >>> 1) ^ -(r & 1);
    if (length < 0 || o + length > limit) return undefined;
    const end = o + length;
    if (o >= end) return undefined;
    const attributes = (buf[o++]! << 24) >> 24;
    // Timestamp delta: a varlong, exact as a number up to 7 bytes (49 bits).
    let z = 0;
    let mul = 1;
    let n = 0;
    do {
      if (o >= end || n === 7) return undefined;
      b = buf[o++]!;
      z += (b & 0x7f) * mul;
      mul *= 128;
      n++;
    } while (b >= 0x80);
    const tsDelta = z % 2 === 0 ? z / 2 : -(z + 1) / 2;
    r = 0;
    s = 0;
    do {
      if (o >= end || s > 28) return undefined;
      b = buf[o++]!;
      r += (b & 0x7f) << s;
      s += 7;
    } while (b >= 0x80);
    const offsetDelta = (r >>> 1) ^ -(r & 1);
    let key: Buffer | null = null;
    let value: Buffer | null = null;
    for (let field = 0; field < 2; field++) {
      r = 0;
      s = 0;
      do {
        if (o >= end || s > 28) return undefined;
        b = buf[o++]!;
        r += (b & 0x7f) << s;
        s += 7;
      } while (b >= 0x80);
      const len = (r >>> 1) ^ -(r & 1);
      let bytes: Buffer | null = null;
      if (len !== -1) {
        if (len < 0 || o + len > end) return undefined;
        bytes = buf.subarray(o, o + len);
        o += len;
      }
      if (field === 0) key = bytes;
      else value = bytes;
    }
    let headers: Record<string, unknown>;
    if (o < end && buf[o] === 0) {
      headers = {};
      o++;
    } else {
      // Headers (rare on the hot path): kafkajs' own readers over the record's bytes.
      const hd = new Decoder(buf.subarray(o, end));
      headers = hd.readVarIntArray(HeaderDecoder).reduce(headersReducer, {});
      if (hd.offset > end - o) return undefined;
      o = end;
    }
    if (o > end) return undefined;
    let timestamp: string;
    if (ctx.timestampType === LOG_APPEND_TIME && ctx.maxTimestamp) timestamp = ctx.maxTimestamp;
    else {
      const t = firstTimestamp + tsDelta;
      timestamp = Math.abs(firstTimestamp) <= SAFE && Math.abs(t) <= SAFE ? String(t) : Long.fromValue(ctx.firstTimestamp).add(tsDelta).toString();
    }
    const off = firstOffset + offsetDelta;
    const offset = Math.abs(firstOffset) <= SAFE && Math.abs(off) <= SAFE ? String(off) : Long.fromValue(ctx.firstOffset).add(offsetDelta).toString();
    d.offset = end;
    return {
      magicByte: ctx.magicByte,
      attributes,
      timestamp,
      offset,
      key,
      value,
      headers,
      isControlRecord: ctx.isControlBatch,
      batchContext: ctx,
    };
  };

  /** kafkajs' `decodeRecord`: the record's bytes, then its record decoder over them. */
  const slowRecord = (d: DecoderLike, ctx: Context) => RecordDecoder(new Decoder(d.readVarIntBytes()!), ctx);

  const decodeRecord = (d: DecoderLike, ctx: Context, firstOffset: number, firstTimestamp: number) =>
    fastRecord(d, ctx, firstOffset, firstTimestamp) ?? slowRecord(d, ctx);

  const decodeRecords = async (codec: ReturnType<typeof compression.lookupCodecByAttributes>, d: DecoderLike, ctx: Context) => {
    // Number() of the decimal strings kafkajs made: exact where |n| <= 2^53, which fastRecord checks.
    const fo = Number(ctx.firstOffset);
    const ft = Number(ctx.firstTimestamp);
    if (!codec) {
      const length = d.readInt32();
      if (length === -1) return [];
      const records = new Array<unknown>(length);
      for (let i = 0; i < length; i++) records[i] = decodeRecord(d, ctx, fo, ft);
      return records;
    }
    const length = d.readInt32();
    if (length <= 0) return [];
    const decompressed = new Decoder(await codec.decompress(d.readAll()));
    const records = new Array<unknown>(length);
    for (let i = 0; i < length; i++) records[i] = decodeRecord(decompressed, ctx, fo, ft);
    return records;
  };

  return async (fetchDecoder: DecoderLike) => {
    const firstOffset = fetchDecoder.readInt64().toString();
    const length = fetchDecoder.readInt32();
    const decoder = fetchDecoder.slice(length);
    fetchDecoder.forward(length);

    const remainingBytes = Buffer.byteLength(decoder.buffer);
    if (remainingBytes < length) {
      throw new KafkaJSPartialMessageError(`Tried to decode a partial record batch: remainingBytes(${remainingBytes}) < recordBatchLength(${length})`);
    }

    const partitionLeaderEpoch = decoder.readInt32();
    const magicByte = decoder.readInt8();
    decoder.readInt32(); // CRC: kafkajs does not check it either
    const attributes = decoder.readInt16();
    const lastOffsetDelta = decoder.readInt32();
    const firstTimestamp = decoder.readInt64().toString();
    const maxTimestamp = decoder.readInt64().toString();
    const producerId = decoder.readInt64().toString();
    const producerEpoch = decoder.readInt16();
    const firstSequence = decoder.readInt32();

    const recordContext = {
      firstOffset,
      firstTimestamp,
      partitionLeaderEpoch,
      inTransaction: (attributes & TRANSACTIONAL_FLAG_MASK) > 0,
      isControlBatch: (attributes & CONTROL_FLAG_MASK) > 0,
      lastOffsetDelta,
      producerId,
      producerEpoch,
      firstSequence,
      maxTimestamp,
      timestampType: (attributes & TIMESTAMP_TYPE_FLAG_MASK) > 0 ? LOG_APPEND_TIME : CREATE_TIME,
    };
    const codec = compression.lookupCodecByAttributes(attributes);
    const records = await decodeRecords(codec, decoder, { ...recordContext, magicByte });
    return { ...recordContext, records };
  };
}
