/**
 * Replacements for kafkajs 2.2.4's `protocol/recordBatch/record/v0` and `protocol/recordBatch/v0` (the produce
 * path): the same exports and the same bytes. kafkajs builds every record in its own `new Encoder()` (a zero-filled
 * 512-byte Buffer), copies it into the batch, the batch into a second and a third encoder, and checksums it a byte
 * at a time. Here a record is measured once and written straight into the one buffer of its batch.
 */
import { crc32c } from "./crc32c.js";
import type { EncoderClass, EncoderLike, KafkajsInternals } from "./internals.js";

/** kafkajs' `Encoder.encodeZigZag`. */
export const zigzag = (v: number) => (v << 1) ^ (v >> 31);

/** Bytes of kafkajs' `writeUVarInt(v)`: LEB128 of the value's low 32 bits. */
export function sizeOfUVarInt(v: number): number {
  let n = 1;
  while ((v & 0xffffff80) !== 0) {
    n++;
    v >>>= 7;
  }
  return n;
}

export function putUVarInt(buf: Uint8Array, o: number, v: number): number {
  while ((v & 0xffffff80) !== 0) {
    buf[o++] = (v & 0x7f) | 0x80;
    v >>>= 7;
  }
  buf[o++] = v & 0x7f;
  return o;
}

/** A varlong's zigzag as a number, where it is exact (|v| < 2^52); else undefined: kafkajs' own code takes it. */
export function zigzag64(v: unknown): number | undefined {
  if (typeof v !== "number" || !Number.isInteger(v) || Math.abs(v) >= 2 ** 52) return undefined;
  if ((v | 0) === v) return zigzag(v) >>> 0;
  return v >= 0 ? v * 2 : -v * 2 - 1;
}

export function sizeOfUVarLong(z: number): number {
  let n = 1;
  while (z >= 128) {
    n++;
    z = Math.floor(z / 128);
  }
  return n;
}

export function putUVarLong(buf: Uint8Array, o: number, z: number): number {
  while (z >= 128) {
    buf[o++] = (z % 128) | 0x80;
    z = Math.floor(z / 128);
  }
  buf[o++] = z;
  return o;
}

/** A key, value or header value as kafkajs writes it (`writeVarIntBytes`): null, a Buffer, or `String(value)`. */
type Bytes = Buffer | string | null;

const asBytes = (v: unknown): Bytes => (v == null ? null : Buffer.isBuffer(v) ? v : String(v));
/** Bytes `writeVarIntBytes` writes for a normalized value. */
/** Bytes `writeVarIntBytes` writes for a value of `len` bytes (-1: null). */
export const sizeOfBytes = (len: number) => (len < 0 ? 1 : sizeOfUVarInt(zigzag(len)) + len);
const lengthOf = (b: Bytes) => (b === null ? -1 : typeof b === "string" ? Buffer.byteLength(b, "utf8") : b.length);

/** `writeVarIntBytes` of a null (or undefined), string or Buffer value of `len` bytes. */
export function putBytes(buf: Buffer, o: number, b: Bytes | undefined, len: number): number {
  if (b == null) {
    buf[o] = 1; // zigzag(-1)
    return o + 1;
  }
  o = putUVarInt(buf, o, zigzag(len));
  if (typeof b === "string") buf.write(b, o, len, "utf8");
  else buf.set(b, o);
  return o + len;
}

interface Header {
  key: string;
  keyLen: number;
  value: Bytes;
  valueLen: number;
}

/**
 * One encoded record, written into its batch's buffer by `write`. For code that treats it as kafkajs' Encoder
 * (`buf`, `offset`, `buffer`, `size()`), it encodes itself into a buffer of its own on first use.
 */
export class EncodedRecord {
  /** Bytes of the whole record, its length prefix included. */
  readonly length: number;
  private own?: Buffer;

  constructor(
    private readonly bodySize: number,
    private readonly tsZigzag: number | undefined,
    private readonly tsBytes: Buffer | undefined,
    private readonly offsetDelta: number,
    private readonly key: Bytes,
    private readonly keyLen: number,
    private readonly value: Bytes,
    private readonly valueLen: number,
    private readonly headers: Header[],
    written: number,
  ) {
    this.length = written;
  }

  /** Writes the record at `o` of `buf` (which has room for `length` bytes); returns the offset after it. */
  write(buf: Buffer, o: number): number {
    o = putUVarInt(buf, o, zigzag(this.bodySize));
    buf[o++] = 0; // attributes
    if (this.tsBytes) {
      buf.set(this.tsBytes, o);
      o += this.tsBytes.length;
    } else o = putUVarLong(buf, o, this.tsZigzag!);
    o = putUVarInt(buf, o, zigzag(this.offsetDelta));
    o = putBytes(buf, o, this.key, this.keyLen);
    o = putBytes(buf, o, this.value, this.valueLen);
    const hs = this.headers;
    o = putUVarInt(buf, o, zigzag(hs.length));
    for (let i = 0; i < hs.length; i++) {
      const h = hs[i]!;
      o = putUVarInt(buf, o, zigzag(h.keyLen));
      buf.write(h.key, o, h.keyLen, "utf8");
      o += h.keyLen;
      o = putBytes(buf, o, h.value, h.valueLen);
    }
    return o;
  }

  get buf(): Buffer {
    if (!this.own) {
      this.own = Buffer.allocUnsafe(this.length);
      this.write(this.own, 0);
    }
    return this.own;
  }
  get offset(): number {
    return this.length;
  }
  get buffer(): Buffer {
    return this.buf;
  }
  size(): number {
    return this.length;
  }
}

const NO_HEADERS: Header[] = [];

/** `recordBatch/record/v0`: `({ offsetDelta, timestampDelta, key, value, headers }) => Encoder`. */
export function makeRecord(Encoder: EncoderClass) {
  return ({
    offsetDelta = 0,
    timestampDelta = 0,
    key,
    value,
    headers = {},
  }: {
    offsetDelta?: number;
    timestampDelta?: unknown;
    key?: unknown;
    value?: unknown;
    headers?: Record<string, unknown>;
  }): EncodedRecord => {
    // kafkajs' header list and its size arithmetic, in its order (a null header value throws there as here).
    let headerList = NO_HEADERS;
    let headersSize = 1;
    const names = Object.keys(headers);
    if (names.length > 0) {
      const flat: Array<{ key: string; value: unknown }> = names.flatMap((k) => {
        const v = headers[k];
        return !Array.isArray(v) ? [{ key: k, value: v }] : v.map((x: unknown) => ({ key: k, value: x }));
      });
      headersSize = Encoder.sizeOfVarInt(flat.length);
      for (const h of flat) {
        const keySize = Buffer.byteLength(h.key);
        const valueSize = Buffer.byteLength(h.value as string);
        headersSize += Encoder.sizeOfVarInt(keySize) + keySize;
        headersSize += h.value === null ? Encoder.sizeOfVarInt(-1) : Encoder.sizeOfVarInt(valueSize) + valueSize;
      }
      headerList = flat.map((h) => {
        const v = asBytes(h.value);
        const keyLen = Buffer.byteLength(h.key, "utf8");
        return { key: h.key, keyLen, value: v, valueLen: lengthOf(v) };
      });
    }
    const tsZigzag = zigzag64(timestampDelta);
    let tsBytes: Buffer | undefined;
    if (tsZigzag === undefined) {
      // Not an exact integer: kafkajs' own varlong code (Long arithmetic) decides the bytes.
      const e = new Encoder();
      e.writeVarLong(timestampDelta);
      tsBytes = Buffer.from(e.buf.subarray(0, e.offset));
    }
    const tsSize = tsBytes ? Encoder.sizeOfVarLong(timestampDelta) : sizeOfUVarLong(tsZigzag!);
    const bodySize =
      1 + tsSize + Encoder.sizeOfVarInt(offsetDelta) + Encoder.sizeOfVarIntBytes(key) + Encoder.sizeOfVarIntBytes(value) + headersSize;

    // What is written (which differs from bodySize only where kafkajs' own size and write disagree, as for a
    // Uint8Array that is not a Buffer: sized by its bytes, written as String(value)).
    const k = asBytes(key);
    const v = asBytes(value);
    const keyLen = lengthOf(k);
    const valueLen = lengthOf(v);
    let written = sizeOfUVarInt(zigzag(bodySize)) + 1 + (tsBytes ? tsBytes.length : tsSize) + sizeOfUVarInt(zigzag(offsetDelta));
    written += sizeOfBytes(keyLen) + sizeOfBytes(valueLen) + sizeOfUVarInt(zigzag(headerList.length));
    for (const h of headerList) written += sizeOfUVarInt(zigzag(h.keyLen)) + h.keyLen + sizeOfBytes(h.valueLen);
    return new EncodedRecord(bodySize, tsZigzag, tsBytes, offsetDelta, k, keyLen, v, valueLen, headerList, written);
  };
}

const MAGIC_BYTE = 2;
const TRANSACTIONAL_MASK = 16;
/** FirstOffset, Length, PartitionLeaderEpoch, Magic, CRC: what precedes the checksummed part. */
const CRC_FROM = 8 + 4 + 4 + 1 + 4;

/** An Encoder over `buf`, without the zero-filled 512-byte buffer its constructor allocates. */
export function encoderOver(Encoder: EncoderClass, buf: Buffer, offset: number): EncoderLike {
  const e = Object.create(Encoder.prototype) as EncoderLike;
  e.buf = buf;
  e.offset = offset;
  return e;
}

interface BatchArgs {
  compression?: number;
  firstOffset?: unknown;
  firstTimestamp?: unknown;
  maxTimestamp?: unknown;
  partitionLeaderEpoch?: number;
  lastOffsetDelta?: number;
  transactional?: boolean;
  producerId?: unknown;
  producerEpoch?: number;
  firstSequence?: number;
  records?: unknown[];
}

/** A batch's records, written one after the other by `write` (no count): `bytes` in all. */
export interface RecordsWriter {
  count: number;
  bytes: number;
  write(buf: Buffer, o: number): number;
}

const bytesWriter = (count: number, bytes: Buffer): RecordsWriter => ({
  count,
  bytes: bytes.length,
  write: (buf, o) => {
    buf.set(bytes, o);
    return o + bytes.length;
  },
});

/**
 * `recordBatch/v0` (`module`: `{ RecordBatch, MAGIC_BYTE }`), and `encodeBatch`, which the produce request uses to
 * write its records straight into the batch.
 */
export function makeRecordBatch(k: KafkajsInternals) {
  const { Encoder, Long, compression: C } = k;
  const None = C.Types.None;

  /** A whole record batch: FirstOffset, Length, PartitionLeaderEpoch, Magic, CRC, then the checksummed body. */
  const encodeBatch = async (
    {
      compression = None,
      firstOffset = Long.fromInt(0),
      firstTimestamp = Date.now(),
      maxTimestamp = Date.now(),
      partitionLeaderEpoch = 0,
      lastOffsetDelta = 0,
      transactional = false,
      producerId = Long.fromValue(-1),
      producerEpoch = 0,
      firstSequence = 0,
    }: Omit<BatchArgs, "records">,
    records: RecordsWriter,
  ): Promise<EncoderLike> => {
    const attributes = (compression & C.COMPRESSION_CODEC_MASK) | (transactional ? TRANSACTIONAL_MASK : 0);
    let body = records;
    if (compression !== None) {
      const buf = Buffer.allocUnsafe(records.bytes);
      const end = records.write(buf, 0);
      body = bytesWriter(records.count, await C.lookupCodec(compression).compress(encoderOver(Encoder, buf, end)));
    }
    // 36 bytes of header fields after the CRC, the record count, the records (or their compressed bytes).
    const size = CRC_FROM + 36 + 4 + body.bytes;
    const out = encoderOver(Encoder, Buffer.allocUnsafe(size), 0);
    out.writeInt64(firstOffset);
    out.writeInt32(size - 12);
    out.writeInt32(partitionLeaderEpoch);
    out.writeInt8(MAGIC_BYTE);
    out.writeUInt32(0); // the CRC, once the body is written
    out.writeInt16(attributes);
    out.writeInt32(lastOffsetDelta);
    out.writeInt64(firstTimestamp);
    out.writeInt64(maxTimestamp);
    out.writeInt64(producerId);
    out.writeInt16(producerEpoch);
    out.writeInt32(firstSequence);
    out.writeInt32(records.count);
    out.offset = body.write(out.buf, out.offset);
    if (out.offset !== size) throw new Error(`record batch encoded to ${out.offset} bytes, ${size} expected`);
    out.buf.writeUInt32BE(crc32c(out.buf, CRC_FROM, size), CRC_FROM - 4);
    return out;
  };

  /** Records that are not all ours (kafkajs' own encoders, or anything else), as kafkajs writes them. */
  const genericRecords = (records: unknown[], compressed: boolean): RecordsWriter => {
    const e = new Encoder();
    if (compressed) e.writeEncoderArray(records);
    else if (records.every((v) => typeof v === typeof records[0])) e.writeArray(records, typeof records[0]);
    else e.writeArray(records);
    // writeArray starts with the count, which encodeBatch writes itself.
    return bytesWriter(records.length, compressed ? e.buffer : e.buffer.subarray(4));
  };

  const RecordBatch = async ({ records = [], ...args }: BatchArgs): Promise<EncoderLike> => {
    const ours = records.length > 0 && records.every((r) => r instanceof EncodedRecord);
    if (!ours) return encodeBatch(args, genericRecords(records, (args.compression ?? None) !== None));
    const list = records as EncodedRecord[];
    let bytes = 0;
    for (const r of list) bytes += r.length;
    return encodeBatch(args, {
      count: list.length,
      bytes,
      write: (buf, o) => {
        for (const r of list) o = r.write(buf, o);
        return o;
      },
    });
  };

  return { module: { RecordBatch, MAGIC_BYTE }, encodeBatch };
}
