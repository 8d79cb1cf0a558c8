/**
 * Replacements for kafkajs 2.2.4's `protocol/requests/produce/v3/request` (v4-v7 wrap it) and `protocol/request`
 * (the frame around every request): the same bytes. kafkajs spread every message into a new object for its record,
 * encoded each partition, topic and the request into encoders of their own (a zero-filled 512-byte Buffer each,
 * grown by doubling) and copied the whole payload at every level, then twice more for the frame. Here each record
 * batch is encoded once and copied once into a request buffer allocated at its final size.
 */
import type { EncodedRecord, RecordsWriter } from "./encode.js";
import { encoderOver, putBytes, putUVarInt, putUVarLong, sizeOfBytes, sizeOfUVarInt, sizeOfUVarLong, zigzag, zigzag64 } from "./encode.js";
import type { EncoderClass, EncoderLike, KafkajsInternals } from "./internals.js";

type RecordFn = (r: { offsetDelta?: number; timestampDelta?: unknown; key?: unknown; value?: unknown; headers?: Record<string, unknown> }) => EncodedRecord;
type EncodeBatchFn = (args: Record<string, unknown>, records: RecordsWriter) => Promise<EncoderLike>;

interface Message {
  key?: unknown;
  value?: unknown;
  headers?: Record<string, unknown>;
  timestamp?: unknown;
}

/** Bytes of kafkajs' `writeString(value)`: an int16 length (-1 for null) and the UTF-8 bytes. */
const sizeOfString = (s: string | null | undefined) => (s == null ? 2 : 2 + Buffer.byteLength(s, "utf8"));

export function makeProduceV3(k: KafkajsInternals, Record: RecordFn, encodeBatch: EncodeBatchFn, apiKey: number) {
  const { Encoder, Long } = k;
  const None = k.compression.Types.None;

  /**
   * One partition's record batch, as kafkajs' partitionsEncoder builds it (timestamps, deltas, sequence). A message
   * with a string, Buffer or missing key and value, no headers and an exact timestamp delta is measured into typed
   * arrays and written straight into the batch; any other goes through `Record` (kafkajs' semantics in full).
   */
  const encodePartition = async (
    compression: number,
    { partition, messages, firstSequence }: { partition: number; messages: Message[]; firstSequence?: number },
    transactionalId: string | null,
    producerId: unknown,
    producerEpoch: number,
  ): Promise<{ partition: number; batch: EncoderLike }> => {
    const dateNow = Date.now();
    let stamped = false;
    for (const m of messages) {
      if (m.timestamp != null) {
        stamped = true;
        break;
      }
    }
    // kafkajs' order: the timestamps given, sorted as strings; now when there are none.
    const timestamps: unknown[] = stamped ? messages.map((m) => m.timestamp).filter((t) => t != null).sort() : [dateNow];
    const firstTimestamp = timestamps[0];
    const maxTimestamp = timestamps[timestamps.length - 1];

    const n = messages.length;
    const keyLen = new Int32Array(n);
    const valueLen = new Int32Array(n);
    const bodySize = new Int32Array(n);
    const tsZigzag = new Float64Array(n);
    let others: Array<EncodedRecord | undefined> | undefined;
    let bytes = 0;
    for (let i = 0; i < n; i++) {
      const m = messages[i]!;
      const key = m.key;
      const value = m.value;
      const delta = ((m.timestamp || dateNow) as number) - (firstTimestamp as number);
      const z = stamped ? zigzag64(delta) : 0;
      const kl = key == null ? -1 : typeof key === "string" ? Buffer.byteLength(key, "utf8") : Buffer.isBuffer(key) ? key.length : -2;
      const vl = value == null ? -1 : typeof value === "string" ? Buffer.byteLength(value, "utf8") : Buffer.isBuffer(value) ? value.length : -2;
      if (m.headers !== undefined || z === undefined || kl === -2 || vl === -2) {
        // What `Record({ ...message, offsetDelta, timestampDelta })` reads, without the copy.
        const args: Parameters<RecordFn>[0] = { offsetDelta: i, timestampDelta: delta, key, value };
        if (m.headers !== undefined) args.headers = m.headers;
        const r = Record(args);
        (others ??= new Array<EncodedRecord | undefined>(n))[i] = r;
        bytes += r.length;
        continue;
      }
      // Attributes, timestamp delta, offset delta, key, value, and a header count of 0.
      const body = 1 + sizeOfUVarLong(z) + sizeOfUVarInt(zigzag(i)) + sizeOfBytes(kl) + sizeOfBytes(vl) + 1;
      keyLen[i] = kl;
      valueLen[i] = vl;
      bodySize[i] = body;
      tsZigzag[i] = z;
      bytes += sizeOfUVarInt(zigzag(body)) + body;
    }
    const write = (buf: Buffer, o: number): number => {
      for (let i = 0; i < n; i++) {
        const r = others?.[i];
        if (r) {
          o = r.write(buf, o);
          continue;
        }
        const m = messages[i]!;
        o = putUVarInt(buf, o, zigzag(bodySize[i]!));
        buf[o++] = 0;
        o = putUVarLong(buf, o, tsZigzag[i]!);
        o = putUVarInt(buf, o, zigzag(i));
        o = putBytes(buf, o, m.key as Buffer | string | null | undefined, keyLen[i]!);
        o = putBytes(buf, o, m.value as Buffer | string | null | undefined, valueLen[i]!);
        buf[o++] = 0;
      }
      return o;
    };
    const batch = await encodeBatch(
      { compression, firstTimestamp, maxTimestamp, producerId, producerEpoch, firstSequence, transactional: !!transactionalId, lastOffsetDelta: n - 1 },
      { count: n, bytes, write },
    );
    return { partition, batch };
  };

  return ({
    acks,
    timeout,
    transactionalId = null,
    producerId = Long.fromInt(-1),
    producerEpoch = 0,
    compression = None,
    topicData,
  }: {
    acks: number;
    timeout: number;
    transactionalId?: string | null;
    producerId?: unknown;
    producerEpoch?: number;
    compression?: number;
    topicData: Array<{ topic: string; partitions: Array<{ partition: number; messages: Message[]; firstSequence?: number }> }>;
  }) => ({
    apiKey,
    apiVersion: 3,
    apiName: "Produce",
    expectResponse: () => acks !== 0,
    encode: async (): Promise<EncoderLike> => {
      const topics: Array<{ topic: string; parts: Array<{ partition: number; batch: EncoderLike }> }> = [];
      let size = sizeOfString(transactionalId) + 2 + 4 + 4;
      for (const { topic, partitions } of topicData) {
        const parts = [];
        size += sizeOfString(topic) + 4;
        for (const data of partitions) {
          const part = await encodePartition(compression, data, transactionalId, producerId, producerEpoch);
          size += 4 + 4 + part.batch.size();
          parts.push(part);
        }
        topics.push({ topic, parts });
      }
      const out = encoderOver(Encoder, Buffer.allocUnsafe(size), 0);
      out.writeString(transactionalId).writeInt16(acks).writeInt32(timeout).writeInt32(topics.length);
      for (const { topic, parts } of topics) {
        out.writeString(topic).writeInt32(parts.length);
        for (const { partition, batch } of parts) out.writeInt32(partition).writeInt32(batch.size()).writeEncoder(batch);
      }
      return out;
    },
  });
}

/** `protocol/request`: a request's frame (size, api key and version, correlation id, client id) and its payload. */
export function makeRequest(Encoder: EncoderClass) {
  return async ({
    correlationId,
    clientId,
    request: { apiKey, apiVersion, encode },
  }: {
    correlationId: number;
    clientId: string | null;
    request: { apiKey: number; apiVersion: number; encode: () => Promise<EncoderLike> };
  }): Promise<EncoderLike> => {
    const payload = await encode();
    const size = 2 + 2 + 4 + sizeOfString(clientId) + payload.size();
    const out = encoderOver(Encoder, Buffer.allocUnsafe(4 + size), 0);
    return out.writeInt32(size).writeInt16(apiKey).writeInt16(apiVersion).writeInt32(correlationId).writeString(clientId).writeEncoder(payload);
  };
}
