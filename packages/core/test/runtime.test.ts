import { describe, expect, it } from "vitest";
import { ConfigError, configJsonSchema } from "../src/config.js";
import { Runtime } from "../src/runtime.js";
import { namedMemoryChannel } from "../src/backends/memory.js";
import type { BackendDefinition, OutRecord } from "../src/types.js";

function sinkBackend(got: OutRecord[], connects = { n: 0, failFirst: 0 }): BackendDefinition {
  return {
    name: "sink",
    producer: (o) => ({
      async connect() {
        connects.n++;
        if (connects.n <= connects.failFirst) throw new Error("not yet");
      },
      async send(rs) {
        got.push(...rs.map((r) => ({ ...r, topic: String(o.topic) })));
        return rs.map(() => ({ ok: true as const }));
      },
    }),
    validate: (o) => (o.shout !== undefined && typeof o.shout !== "boolean" ? [{ path: "shout", message: "must be a boolean" }] : []),
  };
}

describe("Runtime", () => {
  it("provisions brokers from the original's broker-list shape and runs them", async () => {
    const got: OutRecord[] = [];
    const rt = new Runtime({ backends: [sinkBackend(got)] });
    const app = await rt.load({
      brokers: [
        {
          name: "b1",
          consumers: [{ backend: "memory", topic: "rt-in-1", codec: "json" }],
          producers: [{ backend: "sink", topic: "${SINK_TOPIC:-fallback}", codec: "json" }],
          filter_metadata: { actiontype: ["create"] },
        },
        { name: "off", enabled: false, consumers: [{ backend: "nope" }] },
      ],
    });
    await namedMemoryChannel("rt-in-1").producer().send([
      { value: JSON.stringify({ metadata: { actiontype: "create" }, data: 1 }) },
      { value: JSON.stringify({ metadata: { actiontype: "delete" }, data: 2 }) },
    ]);
    const [stats] = await app.run({ untilIdle: true });
    await app.stop();
    expect(app.brokers).toHaveLength(1);
    expect(got).toHaveLength(1);
    expect(got[0]!.topic).toBe("fallback");
    expect(stats!.filtered).toBe(1);
  });

  it("lists every config problem with its path", async () => {
    const rt = new Runtime({ backends: [sinkBackend([])], env: {} });
    const err = await rt
      .load({
        brokers: [
          {
            name: "x",
            count: -1,
            bogus: true,
            consumers: [{ backend: "no-such-backend-xyz" }, { backend: "memory", codec: "yaml-ish" }],
            producers: [{ backend: "sink", shout: "loud", topic: "${MISSING_VAR}" }],
            stores_out: [{ backend: "sink", key: "k" }],
          },
        ],
      })
      .catch((e: unknown) => e);
    expect(err).toBeInstanceOf(ConfigError);
    const issues = (err as ConfigError).issues;
    const paths = issues.map((i) => i.path);
    // The shape errors come first and stop the rest; fix them and the backend errors show.
    expect(paths).toContain("brokers[0].count");
    expect(paths).toContain("brokers[0]");
    // A broker that parses is checked even when another does not.
    const mixed = (await rt
      .load({ brokers: [{ name: "bad", count: -1 }, { name: "ok", consumers: [{ backend: "no-such-backend-xyz" }] }] })
      .catch((e: unknown) => e)) as ConfigError;
    expect(mixed.issues.map((i) => i.path)).toEqual(["brokers[0].count", "brokers[1].consumers[0].backend"]);
    const err2 = (await rt
      .load({
        brokers: [
          {
            name: "x",
            consumers: [{ backend: "no-such-backend-xyz" }, { backend: "memory", codec: "yaml-ish" }],
            producers: [{ backend: "sink", shout: "loud", topic: "${MISSING_VAR}" }],
            stores_out: [{ backend: "sink", key: "k" }],
          },
        ],
      })
      .catch((e: unknown) => e)) as ConfigError;
    const msgs = err2.issues.map((i) => `${i.path}: ${i.message}`);
    expect(msgs).toEqual(
      expect.arrayContaining([
        expect.stringMatching(/^brokers\[0\]\.producers\[0\]\.topic: environment variable MISSING_VAR is not set/),
        expect.stringMatching(/^brokers\[0\]\.consumers\[0\]\.backend: backend "no-such-backend-xyz" is not installed: npm install no-such-backend-xyz/),
        expect.stringMatching(/^brokers\[0\]\.consumers\[1\]\.codec: unknown codec "yaml-ish"/),
        expect.stringMatching(/^brokers\[0\]\.producers\[0\]\.shout: must be a boolean/),
        expect.stringMatching(/^brokers\[0\]\.stores_out\[0\]\.backend: backend "sink" cannot be a store/),
      ]),
    );
    expect(err2.message).toMatch(/has 5 problem\(s\)/);
  });

  it("uses global defaults only as a fallback", async () => {
    const seen: Record<string, unknown>[] = [];
    const rt = new Runtime({
      backends: [{ name: "probe", producer: (o) => (seen.push(o), { send: async (rs) => rs.map(() => ({ ok: true as const })) }) }],
    });
    await rt.load({
      defaults: { probe: { region: "eu", topic_prefix: "dflt." } },
      brokers: [{ name: "b", producers: [{ backend: "probe", topic_prefix: "mine.", options: { some_option: 1 } }] }],
    });
    expect(seen[0]).toMatchObject({ region: "eu", topicPrefix: "mine.", someOption: 1 });
  });

  it("retries a failed connect and reports readiness", async () => {
    const connects = { n: 0, failFirst: 2 };
    const rt = new Runtime({ backends: [sinkBackend([], connects)] });
    const app = await rt.load({ brokers: [{ name: "b", max_tries: 4, producers: [{ backend: "sink", topic: "t" }] }] });
    expect(app.ready()).toBe(false);
    await app.connect();
    expect(connects.n).toBe(3);
    expect(app.ready()).toBe(true);
    expect(app.health()[0]).toMatchObject({ broker: "b", role: "producer", backend: "sink", state: "ready" });
    await app.stop();
    expect(app.health()[0]!.state).toBe("closed");
  });

  it("publishes the config schema as JSON Schema", () => {
    const schema = configJsonSchema();
    expect(schema.type).toBe("object");
    expect(JSON.stringify(schema)).toContain("filter_metadata");
  });
});
