import type { Consumer, Payload, Producer, Store, StoreCapabilities, Codec } from "@geowatch/core";

/** One isolated channel (a fresh topic, queue or file) that a test owns from setup to teardown. */
export interface ChannelHarness {
  /** A fresh producer on this channel. */
  producer?: () => Producer | Promise<Producer>;
  /** A fresh consumer on this channel; a new one after close must see unacknowledged records again. */
  consumer?: () => Consumer | Promise<Consumer>;
  /** Consumer-only backends: put raw records on the server. */
  inject?: (payloads: Payload[]) => Promise<void>;
  /** Producer-only backends: up to `n` payloads that reached the server, waiting at most `timeoutMs`. */
  readBack?: (n: number, timeoutMs: number) => Promise<Payload[]>;
  teardown?: () => Promise<void>;
}

/** What the channel promises; a check runs only for what is claimed. */
export interface ChannelCapabilities {
  /** Per-record `ack` removes a record for good. */
  acks?: boolean;
  /** `stream`: order kept within `position.stream`, acknowledged by `commit`; `total`: one FIFO order. */
  ordering?: "none" | "stream" | "total";
  /** A new consumer instance receives what an earlier, closed one received but never acknowledged. */
  redelivery?: boolean;
  /** Largest record in bytes; the producer reports `ok: false` for a bigger one in a batch. */
  maxRecordBytes?: number;
  /** `nack` with `requeue: true` delivers the records again. */
  nackRequeue?: boolean;
  /** Record keys arrive as sent. */
  keys?: boolean;
  /** Record headers arrive as sent. */
  headers?: boolean;
}

export interface ChannelSuiteOptions {
  setup: () => Promise<ChannelHarness>;
  capabilities: ChannelCapabilities;
  /** How long a check waits for records to arrive. Default 10000. */
  timeoutMs?: number;
}

/** A store under test, with an optional side door for reading when the store itself cannot. */
export interface StoreHarness {
  store: () => Store | Promise<Store>;
  /** Reads a key straight from the server, for stores without `read`. */
  read?: (key: string) => Promise<Payload | undefined>;
  teardown?: () => Promise<void>;
}

export interface StoreSuiteOptions {
  setup: () => Promise<StoreHarness>;
  capabilities: StoreCapabilities;
}

export interface CodecSuiteOptions {
  codec: Codec;
  /** Values that must survive encode/decode (and pack/unpack). */
  samples: unknown[];
  /** Payloads `decode` must reject with a DECODE error. */
  bad: Payload[];
  /** Default: deep equality. */
  equal?: (a: unknown, b: unknown) => boolean;
}

export interface CheckOptions {
  /** How long to wait for records. Default 10000. */
  timeoutMs?: number;
}

/** One conformance check on a channel that is already set up. Throws on a violation. */
export type ChannelCheck = (harness: ChannelHarness, capabilities: ChannelCapabilities, opts?: CheckOptions) => Promise<void>;

/** One conformance check on a store that is already set up. Throws on a violation. */
export type StoreCheck = (harness: StoreHarness, capabilities: StoreCapabilities) => Promise<void>;

/** One conformance check on a codec. Throws on a violation. */
export type CodecCheck = (opts: CodecSuiteOptions) => void;
