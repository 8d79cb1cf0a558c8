import { randomBytes } from "node:crypto";
import type { ICustomPartitioner, PartitionMetadata } from "kafkajs";

const SEED = 0x9747b28c | 0;
const M = 0x5bd1e995;

/**
 * Kafka's murmur2 (the Java client's `Utils.murmur2`) in 32-bit integer arithmetic. kafkajs computes the same hash
 * with its 64-bit Long emulation, allocating several objects per key; only the low 32 bits of its products and
 * xors reach the result, so `Math.imul` gives identical values.
 */
export function murmur2(data: Uint8Array): number {
  const length = data.length;
  let h = SEED ^ length;
  const length4 = length >>> 2;
  for (let i = 0; i < length4; i++) {
    const i4 = i * 4;
    let k = data[i4]! | (data[i4 + 1]! << 8) | (data[i4 + 2]! << 16) | (data[i4 + 3]! << 24);
    k = Math.imul(k, M);
    k ^= k >>> 24;
    k = Math.imul(k, M);
    h = Math.imul(h, M) ^ k;
  }
  const tail = length & ~3;
  switch (length & 3) {
    case 3:
      h ^= data[tail + 2]! << 16;
    // falls through
    case 2:
      h ^= data[tail + 1]! << 8;
    // falls through
    case 1:
      h ^= data[tail]!;
      h = Math.imul(h, M);
  }
  h ^= h >>> 13;
  h = Math.imul(h, M);
  h ^= h >>> 15;
  return h | 0;
}

const toPositive = (x: number) => x & 0x7fffffff;

/**
 * kafkajs' `DefaultPartitioner` (a record's own partition, else murmur2 of the key as the Java client does, else
 * round robin over partitions with a leader), choosing the same partitions, without its per-record allocations:
 * it filtered the partition list for every record and hashed with Long objects (5% of a relay's CPU together).
 */
export const defaultPartitioner: ICustomPartitioner = () => {
  const counters = new Map<string, number>();
  const available = new WeakMap<PartitionMetadata[], PartitionMetadata[]>();
  return ({ topic, partitionMetadata, message }) => {
    if (message.partition !== null && message.partition !== undefined) return message.partition;
    const key = message.key;
    if (key !== null && key !== undefined) {
      const bytes = typeof key === "string" ? Buffer.from(key) : key;
      return toPositive(murmur2(bytes)) % partitionMetadata.length;
    }
    // kafkajs hands every record of a request the same metadata array until its next metadata refresh.
    let up = available.get(partitionMetadata);
    if (!up) {
      up = partitionMetadata.filter((p) => p.leader >= 0);
      available.set(partitionMetadata, up);
    }
    const next = (counters.get(topic) ?? randomBytes(4).readUInt32BE(0)) + 1;
    counters.set(topic, next);
    if (up.length > 0) return up[toPositive(next) % up.length]!.partitionId;
    return toPositive(next) % partitionMetadata.length;
  };
};
