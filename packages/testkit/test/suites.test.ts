// The suites run green on correct reference implementations and on the core's memory channel.
import { describe, expect, it } from "vitest";
import * as core from "@geowatch/core";
import { memoryChannel } from "@geowatch/core";
import type { Codec, Payload } from "@geowatch/core";
import { codecSuite, consumerSuite, producerSuite, requireEnv, storeSuite } from "../src/index.js";
import { queueHarness, refJsonCodec, refStore, streamHarness } from "./reference.js";

const queueCaps = { acks: true, ordering: "total", redelivery: true, nackRequeue: true, maxRecordBytes: 300 * 1024 } as const;

consumerSuite("reference queue", { setup: async () => queueHarness(), capabilities: queueCaps, timeoutMs: 3000 });
consumerSuite("reference queue (inject only)", {
  setup: async () => {
    const { consumer, inject } = queueHarness();
    return { consumer, inject };
  },
  capabilities: queueCaps,
  timeoutMs: 3000,
});
producerSuite("reference queue", { setup: async () => queueHarness(), capabilities: { ...queueCaps, keys: true, headers: true }, timeoutMs: 3000 });
producerSuite("reference queue (readBack only)", {
  setup: async () => {
    const h = queueHarness();
    const reader = h.consumer;
    return {
      producer: h.producer,
      readBack: async (n: number, timeoutMs: number): Promise<Payload[]> => {
        const c = reader();
        try {
          return (await c.receive(n, { waitMs: timeoutMs })).map((r) => r.value);
        } finally {
          await c.close?.();
        }
      },
    };
  },
  capabilities: { maxRecordBytes: 300 * 1024 },
  timeoutMs: 3000,
});

consumerSuite("reference stream", { setup: async () => streamHarness(), capabilities: { ordering: "stream", redelivery: true }, timeoutMs: 3000 });
producerSuite("reference stream", { setup: async () => streamHarness(), capabilities: { ordering: "stream", keys: true }, timeoutMs: 3000 });

// The core's own in-process channel is the first real backend through the suites.
const memoryHarness = async () => {
  const ch = memoryChannel();
  return { producer: () => ch.producer(), consumer: () => ch.consumer() };
};
consumerSuite("core memoryChannel", { setup: memoryHarness, capabilities: { acks: true, ordering: "total", redelivery: true, nackRequeue: true }, timeoutMs: 3000 });
producerSuite("core memoryChannel", { setup: memoryHarness, capabilities: { keys: true, headers: true }, timeoutMs: 3000 });

storeSuite("reference store", { setup: async () => ({ store: refStore(new Map()) }), capabilities: { append: true, read: true } });
storeSuite("reference store (no append)", { setup: async () => ({ store: refStore(new Map(), { noAppend: true }) }), capabilities: { read: true } });
storeSuite("reference store (read via harness)", {
  setup: async () => {
    const data = new Map<string, string>();
    const full = refStore(data);
    return {
      store: () => {
        const { read: _read, ...writeOnly } = full();
        return writeOnly;
      },
      read: async (key: string) => data.get(key),
    };
  },
  capabilities: { append: true },
});

const samples = [
  { metadata: { actiontype: "create", date: "2026-11-23T16:00:00Z" }, data: { type: "Point", coordinates: [174.76, -36.85] } },
  { name: "地理空间 🛰️ مرحبا e\u0301" },
  [1, 2.5, null, true, "x"],
  "a string",
  0,
];
const bad = ["{not json", '{"a":', "", new Uint8Array([0x7b, 0x22])];
codecSuite("reference json", { codec: refJsonCodec(), samples, bad });

// The core's codecs, once it exports them.
for (const [exportName, codecSamples, codecBad] of [
  ["jsonCodec", samples, bad],
  ["ndjsonCodec", samples, bad],
  ["plainCodec", ["plain text", "地理空间 🛰️", ""], [new Uint8Array([0xff, 0xfe, 0xc3])]],
] as const) {
  const codec = (core as Record<string, unknown>)[exportName] as Codec | undefined;
  if (codec) codecSuite(`core ${exportName}`, { codec, samples: [...codecSamples], bad: [...codecBad] });
}

describe("requireEnv", () => {
  it("returns a set variable", () => {
    process.env.GWTK_TEST_SET = "127.0.0.1:9092";
    expect(requireEnv("GWTK_TEST_SET", "start it")).toBe("127.0.0.1:9092");
  });
  it("throws, naming the variable and the hint, when it is unset or blank", () => {
    delete process.env.GWTK_TEST_UNSET;
    expect(() => requireEnv("GWTK_TEST_UNSET", "Run .ci/servers/kafka.sh start")).toThrow(/GWTK_TEST_UNSET is not set\. Run \.ci\/servers\/kafka\.sh start/);
    process.env.GWTK_TEST_BLANK = " ";
    expect(() => requireEnv("GWTK_TEST_BLANK", "hint")).toThrow(/GWTK_TEST_BLANK/);
  });
});
