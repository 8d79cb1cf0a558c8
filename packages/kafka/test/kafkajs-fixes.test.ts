// The replacements seeded into kafkajs 2.2.4 against kafkajs' own modules, byte for byte and value for value.
// Needs no server: everything is encoded and decoded in memory.
import { afterEach, beforeAll, describe, expect, it, vi } from "vitest";
import { SEEDED, fixKafkajs, kafkajsStatus, loadKafkajs } from "../src/kafkajs-fixes.js";
import { crc32c } from "../src/kafkajs/crc32c.js";
import { live, pristine } from "./pristine.js";

beforeAll(() => {
  fixKafkajs();
  loadKafkajs();
});
afterEach(() => {
  vi.restoreAllMocks();
});

const REC = "src/protocol/recordBatch/record/v0/index.js";
const BATCH = "src/protocol/recordBatch/v0/index.js";
const BATCH_DECODER = "src/protocol/recordBatch/v0/decoder.js";
const DECODER = "src/protocol/decoder.js";
const GZIP = 1;

/** A deterministic pseudo-random sequence, so a failure is reproducible. */
function rng(seed: number) {
  let s = seed >>> 0;
  return () => {
    s = (Math.imul(s, 1664525) + 1013904223) >>> 0;
    return s / 2 ** 32;
  };
}

const hex = (e: { buffer: Buffer }) => e.buffer.toString("hex");

interface Msg {
  key?: unknown;
  value?: unknown;
  headers?: Record<string, unknown>;
  timestamp?: unknown;
}

/** Messages with every shape the producer can send: keys or none, null values, headers, big and unicode values. */
function messages(seed: number, count: number, big = 300_000): Msg[] {
  const r = rng(seed);
  const out: Msg[] = [];
  const base = 1_764_600_000_000;
  for (let i = 0; i < count; i++) {
    const m: Msg = {};
    const kind = Math.floor(r() * 6);
    if (kind === 1) m.key = `key-${Math.floor(r() * 1000)}`;
    else if (kind === 2) m.key = Buffer.from([0, 1, 2, Math.floor(r() * 256)]);
    else if (kind === 3) m.key = "ünï ✓ ключ";
    const v = Math.floor(r() * 8);
    if (v === 0) m.value = null;
    else if (v === 1) m.value = Buffer.alloc(Math.floor(r() * big), i & 0xff);
    else if (v === 2) m.value = "ünïcødé ✓ " + "x".repeat(Math.floor(r() * 200));
    else if (v === 3) m.value = "";
    else m.value = JSON.stringify({ id: i, lon: r() * 360 - 180, lat: r() * 180 - 90 });
    if (r() < 0.3) {
      m.headers = { a: "1", "ü-key": Buffer.from("b") };
      if (r() < 0.5) m.headers.multi = ["x", "y", Buffer.from("zz")];
    } else if (r() < 0.2) m.headers = {};
    // Timestamps: mostly close together; some far apart (deltas beyond int32) or before the first.
    const t = r();
    m.timestamp = String(t < 0.8 ? base + Math.floor(r() * 5000) : t < 0.9 ? base - 2 ** 33 : base + 2 ** 40);
    out.push(m);
  }
  return out;
}

describe("CRC32C", () => {
  it("known vectors (RFC 3720 B.4 and the check value)", () => {
    expect(crc32c(Buffer.from("123456789"))).toBe(0xe3069283);
    expect(crc32c(Buffer.alloc(32, 0))).toBe(0x8a9136aa);
    expect(crc32c(Buffer.alloc(32, 0xff))).toBe(0x62a8ab43);
    expect(crc32c(Buffer.from(Array.from({ length: 32 }, (_, i) => i)))).toBe(0x46dd794e);
    expect(crc32c(Buffer.from(Array.from({ length: 32 }, (_, i) => 31 - i)))).toBe(0x113fdb5c);
    expect(crc32c(Buffer.alloc(0))).toBe(0);
  });

  it("equals kafkajs' crc32C on every length 0-600 and on sub-ranges", () => {
    const theirs = pristine<(b: Buffer) => number>("src/protocol/recordBatch/crc32C/index.js");
    const r = rng(7);
    const big = Buffer.from(Array.from({ length: 5000 }, () => Math.floor(r() * 256)));
    for (let n = 0; n <= 600; n++) expect(crc32c(big.subarray(0, n)), `length ${n}`).toBe(theirs(big.subarray(0, n)));
    for (let i = 0; i < 200; i++) {
      const a = Math.floor(r() * 5000);
      const b = a + Math.floor(r() * (5000 - a));
      expect(crc32c(big, a, b)).toBe(theirs(big.subarray(a, b)));
    }
    // Views that start at every alignment of the underlying memory.
    for (let shift = 0; shift < 8; shift++) {
      const view = big.subarray(shift, 4000 + shift);
      expect(view.byteOffset % 8).toBe(shift);
      for (const [a, b] of [[0, view.length], [1, 999], [3, 3], [5, 17]] as const) expect(crc32c(view, a, b), `shift ${shift} [${a}, ${b})`).toBe(theirs(view.subarray(a, b)));
    }
  });
});

describe("kafkajs 2.2.4 replacements", () => {
  it("are in place: kafkajs requires the backend's modules", () => {
    expect(kafkajsStatus.version).toBe("2.2.4");
    expect(kafkajsStatus.fixed).toBe(true);
    expect(kafkajsStatus.seeded).toEqual([...SEEDED]);
    for (const rel of SEEDED) expect(live(rel), rel).not.toBe(pristine(rel));
    expect(live(REC).toString()).not.toBe(pristine(REC).toString());
  });

  it("record v0: the same bytes as kafkajs' Record for every shape of message", () => {
    const ours = live(REC);
    const theirs = pristine(REC);
    const deltas = [0, 1, -1, 63, 64, -65, 2 ** 31 - 1, -(2 ** 31), 2 ** 31, 2 ** 40, -(2 ** 40), 2 ** 52 - 1, 2 ** 53, -(2 ** 53), NaN];
    let n = 0;
    for (const m of messages(1, 400)) {
      const a = { ...m, offsetDelta: n, timestampDelta: deltas[n % deltas.length] };
      expect(hex(ours(a)), `record ${n}`).toBe(hex(theirs(a)));
      n++;
    }
    // Defaults and a Uint8Array value (kafkajs sizes it by its bytes and writes it as String(value): kept as is).
    expect(hex(ours({}))).toBe(hex(theirs({})));
    const odd = { value: new Uint8Array([1, 2, 3]), key: "k" };
    expect(hex(ours(odd))).toBe(hex(theirs(odd)));
    // A number key throws in kafkajs (Buffer.byteLength); it throws here too.
    expect(() => theirs({ key: 12345 })).toThrow(TypeError);
    expect(() => ours({ key: 12345 })).toThrow(TypeError);
    // A fractional timestamp delta throws in kafkajs (BigInt of 1.5); it throws here too.
    expect(() => theirs({ value: "v", timestampDelta: 1.5 })).toThrow(RangeError);
    expect(() => ours({ value: "v", timestampDelta: 1.5 })).toThrow(RangeError);
    // A null header value throws in kafkajs (Buffer.byteLength(null)); it throws here too.
    expect(() => theirs({ value: "v", headers: { h: null } })).toThrow(TypeError);
    expect(() => ours({ value: "v", headers: { h: null } })).toThrow(TypeError);
  });

  it("record batch v0: the same bytes, uncompressed and gzip, for batches of 1 to 2,000 records", async () => {
    const [oursRec, theirsRec] = [live(REC), pristine(REC)];
    const [ours, theirs] = [live(BATCH).RecordBatch, pristine(BATCH).RecordBatch];
    expect(live(BATCH).MAGIC_BYTE).toBe(pristine(BATCH).MAGIC_BYTE);
    let seed = 10;
    for (const count of [1, 2, 7, 100, 1000, 2000]) {
      for (const compression of [0, GZIP]) {
        const ms = messages(seed++, count);
        const args = {
          compression,
          firstOffset: count === 7 ? "9007199254740993" : undefined,
          firstTimestamp: 1_764_600_000_000,
          maxTimestamp: 1_764_600_005_000,
          producerId: 4242,
          producerEpoch: 3,
          firstSequence: count * 11,
          transactional: count === 100,
          partitionLeaderEpoch: 5,
          lastOffsetDelta: count - 1,
        };
        const records = (R: (x: object) => unknown) => ms.map((m, i) => R({ ...m, offsetDelta: i, timestampDelta: Number(m.timestamp) - 1_764_600_000_000 }));
        const a = await ours({ ...args, records: records(oursRec) });
        const b = await theirs({ ...args, records: records(theirsRec) });
        expect(a.size(), `${count} records, compression ${compression}`).toBe(b.size());
        expect(a.buffer.equals(b.buffer), `${count} records, compression ${compression}`).toBe(true);
      }
    }
    // Empty, and records that are kafkajs' own encoders (not ours): the generic path.
    expect(hex(await ours({ firstTimestamp: 1, maxTimestamp: 2 }))).toBe(hex(await theirs({ firstTimestamp: 1, maxTimestamp: 2 })));
    const foreign = messages(99, 20).map((m, i) => theirsRec({ ...m, offsetDelta: i }));
    for (const compression of [0, GZIP]) {
      const args = { compression, firstTimestamp: 1, maxTimestamp: 2, records: foreign };
      expect(hex(await ours(args))).toBe(hex(await theirs(args)));
    }
  });

  it("produce requests v3-v7 and their frame: the same request bytes as kafkajs' own encoders", async () => {
    vi.spyOn(Date, "now").mockReturnValue(1_764_600_001_234);
    for (const version of [3, 5, 7]) {
      const rel = `src/protocol/requests/produce/v${version}/request.js`;
      for (const compression of [0, GZIP]) {
        const topicData = [
          { topic: "a", partitions: [{ partition: 0, firstSequence: 5, messages: messages(20 + version, 300) }, { partition: 3, firstSequence: 0, messages: messages(30, 10) }] },
          { topic: "ü-topic", partitions: [{ partition: 1, firstSequence: 9, messages: messages(40, 50) }] },
          // No timestamps: kafkajs stamps them with Date.now() (fixed for this test).
          { topic: "now", partitions: [{ partition: 0, messages: messages(41, 5).map(({ timestamp: _t, ...m }) => m) }] },
          // No headers (the direct path), with and without timestamps, then one message with headers among them.
          {
            topic: "direct",
            partitions: [
              { partition: 0, messages: messages(42, 200).map(({ headers: _h, ...m }) => m) },
              { partition: 1, messages: messages(43, 200).map(({ headers: _h, timestamp: _t, ...m }) => m) },
              { partition: 2, messages: [...messages(44, 20).map(({ headers: _h, ...m }) => m), { value: "h", headers: { a: "b" } }, { key: "7", value: new Uint8Array([1, 2]) }] },
            ],
          },
        ];
        const args = { acks: -1, timeout: 30000, compression, producerId: 77, producerEpoch: 1, topicData };
        const a = await live(rel)(args).encode();
        const b = await pristine(rel)(args).encode();
        expect(a.buffer.equals(b.buffer), `produce v${version}, compression ${compression}`).toBe(true);
        // The request frame around it (size, api key and version, correlation id, client id).
        for (const clientId of ["geowatch", null, "ünï"]) {
          const framed = async (side: typeof live) => (await side("src/protocol/request.js")({ correlationId: 1234 + version, clientId, request: side(rel)(args) })).buffer;
          expect((await framed(live)).equals(await framed(pristine)), `frame v${version} ${clientId}`).toBe(true);
        }
      }
    }
  });

  it("groupMessagesPerPartition: the same groups in the same order, one partitioner call per message", () => {
    const rel = "src/producer/groupMessagesPerPartition.js";
    const ms = messages(5, 3000);
    const calls: [number, number] = [0, 0];
    const partitioner = (side: 0 | 1) => ({ message }: { message: Msg }) => {
      calls[side]++;
      return String(message.key ?? "").length % 6;
    };
    const partitionMetadata = [{ partitionId: 0 }];
    const a = live(rel)({ topic: "t", partitionMetadata, messages: ms, partitioner: partitioner(0) });
    const b = pristine(rel)({ topic: "t", partitionMetadata, messages: ms, partitioner: partitioner(1) });
    expect(Object.keys(a)).toEqual(Object.keys(b));
    for (const k of Object.keys(b)) expect(a[k]).toEqual(b[k]);
    expect(calls).toEqual([3000, 3000]);
    expect(live(rel)({ topic: "t", partitionMetadata: [], messages: ms, partitioner: partitioner(0) })).toEqual({});
  });

  it("record batch decoder: the same records (offsets, timestamps, keys, values, headers) as kafkajs'", async () => {
    const encode = pristine(BATCH).RecordBatch;
    const R = pristine(REC);
    const Decoder = pristine(DECODER);
    const cases: Array<{ name: string; firstOffset: string; firstTimestamp: number | string; compression: number; attributes?: number }> = [
      { name: "plain", firstOffset: "0", firstTimestamp: 1_764_600_000_000, compression: 0 },
      { name: "gzip", firstOffset: "123456", firstTimestamp: 1_764_600_000_000, compression: GZIP },
      { name: "offsets past 2^53", firstOffset: "9007199254740000", firstTimestamp: 1_764_600_000_000, compression: 0 },
      { name: "timestamps past 2^53", firstOffset: "5", firstTimestamp: "9007199254740990", compression: 0 },
      { name: "negative timestamp", firstOffset: "5", firstTimestamp: -1, compression: 0 },
    ];
    for (const c of cases) {
      const ms = messages(c.name.length, 1500, 3000);
      const records = ms.map((m, i) => R({ ...m, offsetDelta: i, timestampDelta: i % 97 === 0 ? 2 ** 45 : i % 13 === 0 ? -(i * 1000) : i }));
      const batch = await encode({ compression: c.compression, firstOffset: c.firstOffset, firstTimestamp: c.firstTimestamp, maxTimestamp: 1_764_600_009_999, records, lastOffsetDelta: records.length - 1 });
      // Two batches back to back, the second with LOG_APPEND_TIME set in its attributes.
      const second = Buffer.from(batch.buffer);
      second.writeInt16BE(second.readInt16BE(21) | 0x8, 21);
      const wire = Buffer.concat([batch.buffer, second]);
      const ours = live(BATCH_DECODER);
      const theirs = pristine(BATCH_DECODER);
      const [d1, d2] = [new (live(DECODER))(wire), new Decoder(wire)];
      for (let b = 0; b < 2; b++) {
        const x = await ours(d1);
        const y = await theirs(d2);
        expect(x.records.length, c.name).toBe(ms.length);
        expect(x, `${c.name}, batch ${b}`).toEqual(y);
        // Same values where toEqual might be lenient: offsets and timestamps as strings, Buffers by content.
        for (let i = 0; i < y.records.length; i += 37) {
          expect(typeof x.records[i].offset).toBe("string");
          expect([x.records[i].offset, x.records[i].timestamp]).toStrictEqual([y.records[i].offset, y.records[i].timestamp]);
          expect(x.records[i].value === null ? null : Buffer.compare(x.records[i].value, y.records[i].value)).toBe(y.records[i].value === null ? null : 0);
        }
      }
      expect(d1.offset).toBe(d2.offset);
    }
  });

  it("fetch decoding: the same messages from a response whose last batch is cut short", async () => {
    const decodeMessages = "src/protocol/requests/fetch/v4/decodeMessages.js";
    const R = pristine(REC);
    const encode = pristine(BATCH).RecordBatch;
    const parts: Buffer[] = [];
    let offset = 0;
    for (let b = 0; b < 4; b++) {
      const ms = messages(60 + b, 200);
      const records = ms.map((m, i) => R({ ...m, offsetDelta: i, timestampDelta: i }));
      parts.push((await encode({ firstOffset: String(offset), firstTimestamp: 1_764_600_000_000, maxTimestamp: 1_764_600_000_000, records, lastOffsetDelta: 199 })).buffer);
      offset += 200;
    }
    const all = Buffer.concat(parts);
    const cut = all.subarray(0, all.length - 1000);
    const wire = Buffer.alloc(4 + cut.length);
    wire.writeInt32BE(cut.length, 0);
    cut.copy(wire, 4);
    const x = await live(decodeMessages)(new (live(DECODER))(wire));
    const y = await pristine(decodeMessages)(new (pristine(DECODER))(wire));
    expect(x.length).toBe(600);
    expect(x).toEqual(y);
  });

  it("consumer batch: the same messages and offsets, with records before the fetched offset dropped", async () => {
    const rel = "src/consumer/batch.js";
    const R = pristine(REC);
    const encode = pristine(BATCH).RecordBatch;
    const records = messages(70, 300).map((m, i) => R({ ...m, offsetDelta: i, timestampDelta: i }));
    const buf = (await encode({ firstOffset: "1000", firstTimestamp: 1, maxTimestamp: 1, records, lastOffsetDelta: 299 })).buffer;
    const decoded = await pristine(BATCH_DECODER)(new (pristine(DECODER))(buf));
    const methods = ["isEmpty", "isEmptyIncludingFiltered", "isEmptyDueToFiltering", "isEmptyControlRecord", "isEmptyDueToLogCompactedMessages", "firstOffset", "lastOffset", "offsetLag", "offsetLagLow"];
    for (const fetched of ["1000", "1150", "1299", "1300", 1200, "9007199254740993"]) {
      const data = { partition: 2, highWatermark: "1400", messages: decoded.records };
      const a = new (live(rel))("t", fetched, data);
      const b = new (pristine(rel))("t", fetched, data);
      expect(a.messages, `fetched ${fetched}`).toEqual(b.messages);
      expect(a.messagesWithinOffset).toEqual(b.messagesWithinOffset);
      for (const m of methods) expect(a[m](), `${m} at ${fetched}`).toEqual(b[m]());
    }
    const empty = { partition: 0, highWatermark: "10", messages: [] };
    for (const m of methods) expect(new (live(rel))("t", "10", empty)[m]()).toEqual(new (pristine(rel))("t", "10", empty)[m]());
  });
});
