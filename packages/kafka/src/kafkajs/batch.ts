/**
 * Replacement for kafkajs 2.2.4's `consumer/batch` (the records of one fetch for one partition): the same class,
 * methods and results. kafkajs parsed every record's offset into a BigInt-backed Long to drop records before the
 * fetched offset; here the comparison is on numbers while the offsets are exact as numbers, Longs beyond.
 */
import type { LongClass, LongLike } from "./internals.js";

interface Message {
  offset: string;
  isControlRecord?: boolean;
}

type LongOps = LongLike & { gte(v: unknown): boolean; multiply(v: unknown): LongLike };

/** A fetched offset as an exact number: a safe integer, or a decimal string of at most 15 digits. */
function exactInt(v: unknown): number | undefined {
  if (typeof v === "number") return Number.isSafeInteger(v) ? v : undefined;
  return typeof v === "string" && /^-?\d{1,15}$/.test(v) ? Number(v) : undefined;
}

export function makeBatch(
  Long: LongClass,
  filterAbortedMessages: (args: { messages: Message[]; abortedTransactions?: unknown[] }) => Message[],
) {
  const L = (v: unknown) => Long.fromValue(v) as LongOps;

  return class Batch {
    fetchedOffset: string;
    topic: string;
    partition: number;
    highWatermark: string;
    rawMessages: Message[];
    messagesWithinOffset: Message[];
    messages: Message[];

    constructor(topic: string, fetchedOffset: string, partitionData: { partition: number; highWatermark: string; abortedTransactions?: unknown[]; messages: Message[] }) {
      this.fetchedOffset = fetchedOffset;
      const { abortedTransactions, messages } = partitionData;
      this.topic = topic;
      this.partition = partitionData.partition;
      this.highWatermark = partitionData.highWatermark;
      this.rawMessages = messages;
      // Fetch can return records before the requested offset (the start of a batch): kafkajs drops those.
      const from = exactInt(fetchedOffset);
      const longFrom = L(fetchedOffset);
      this.messagesWithinOffset =
        from === undefined
          ? messages.filter((m) => L(m.offset).gte(longFrom))
          : messages.filter((m) => {
              // Offsets come from the record batch decoder as decimal strings.
              const n = Number(m.offset);
              return Number.isSafeInteger(n) ? n >= from : L(m.offset).gte(longFrom);
            });
      this.messages = filterAbortedMessages({ messages: this.messagesWithinOffset, abortedTransactions }).filter((m) => !m.isControlRecord);
    }

    isEmpty(): boolean {
      return this.messages.length === 0;
    }

    isEmptyIncludingFiltered(): boolean {
      return this.messagesWithinOffset.length === 0;
    }

    isEmptyDueToFiltering(): boolean {
      return this.isEmpty() && this.rawMessages.length > 0;
    }

    isEmptyControlRecord(): boolean {
      return this.isEmpty() && this.messagesWithinOffset.some(({ isControlRecord }) => isControlRecord);
    }

    isEmptyDueToLogCompactedMessages(): boolean {
      const hasMessages = this.rawMessages.length > 0;
      return hasMessages && this.isEmptyIncludingFiltered();
    }

    firstOffset(): string | null {
      return this.isEmptyIncludingFiltered() ? null : this.messagesWithinOffset[0]!.offset;
    }

    lastOffset(): string {
      if (this.isEmptyDueToLogCompactedMessages()) return this.fetchedOffset;
      if (this.isEmptyIncludingFiltered()) return L(this.highWatermark).add(-1).toString();
      return this.messagesWithinOffset[this.messagesWithinOffset.length - 1]!.offset;
    }

    offsetLag(): string {
      const lastOffsetOfPartition = L(this.highWatermark).add(-1);
      const lastConsumedOffset = L(this.lastOffset());
      return lastOffsetOfPartition.add(lastConsumedOffset.multiply(-1)).toString();
    }

    offsetLagLow(): string {
      if (this.isEmptyIncludingFiltered()) return "0";
      const lastOffsetOfPartition = L(this.highWatermark).add(-1);
      const firstConsumedOffset = L(this.firstOffset());
      return lastOffsetOfPartition.add(firstConsumedOffset.multiply(-1)).toString();
    }
  };
}
