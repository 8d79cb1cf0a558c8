import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { describe, expect, it } from "vitest";
import { z } from "zod";
import { ConfigError, configJsonSchema } from "../src/config.js";
import { defineBackend, defineCodec, defineStage } from "../src/define.js";
import { Runtime } from "../src/runtime.js";
import { namedMemoryChannel } from "../src/backends/memory.js";
import type { OutRecord, Producer } from "../src/types.js";

const sinkOptions = z.strictObject({
  topic: z.string().min(1).describe("Where records go."),
  shout: z.boolean().optional().describe("Upper-case everything."),
});

function sinkBackend(got: OutRecord[], connects = { n: 0, failFirst: 0 }) {
  return defineBackend({
    name: "sink",
    description: "collects records (tests)",
    producer: {
      options: sinkOptions,
      create: (o): Producer => ({
        async connect() {
          connects.n++;
          if (connects.n <= connects.failFirst) throw new Error("not yet");
        },
        async send(rs) {
          got.push(...rs.map((r) => ({ ...r, topic: o.topic })));
          return rs.map(() => ({ ok: true as const }));
        },
      }),
    },
  });
}

/** A backend whose consumer needs `group_id` and whose dead-letter use forbids metadata templates. */
const roleBackend = defineBackend({
  name: "roles",
  description: "role rules (tests)",
  consumer: {
    options: z.strictObject({ groupId: z.string().min(1).describe("Consumer group.") }),
    create: () => ({ receive: async () => [] }),
  },
  producer: {
    options: z.strictObject({ routingKey: z.string().default("x").describe("Routing key template.") }),
    create: () => ({ send: async (rs) => rs.map(() => ({ ok: true as const })) }),
    check: (o, use) => (use.deadLetter && o.routingKey.includes("{metadata.") ? [{ path: "routingKey", message: "dead letters carry no metadata" }] : []),
  },
});

const IN = { backend: "memory", topic: "unused-in" };

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

  it("lists every problem in one pass: broker fields, each node, options, codecs, roles", async () => {
    const rt = new Runtime({ backends: [sinkBackend([]), roleBackend], env: {}, importer: async (s) => Promise.reject(Object.assign(new Error(`Cannot find package '${s}'`), { code: "ERR_MODULE_NOT_FOUND" })) });
    const err = (await rt
      .load({
        brokers: [
          {
            name: "x",
            count: -1,
            bogus: true,
            consumers: [{ backend: "no-such-backend-xyz" }, { backend: "memory", codec: "yaml-ish" }, { backend: "roles" }, "not a node"],
            producers: [{ backend: "sink", shout: "loud", topic: "${MISSING_VAR}", linger_msx: 1 }],
            stores_out: [{ backend: "sink", key: "k" }],
            dead_letter: { backend: "roles", routing_key: "{metadata.actiontype}" },
          },
          { name: "ok-shape", consumers: [{ backend: "roles", group_id: "g", count: 5, linger_ms: 3 }], producers: [{ backend: "sink", topic: "t" }] },
        ],
      })
      .catch((e: unknown) => e)) as ConfigError;
    expect(err).toBeInstanceOf(ConfigError);
    const msgs = err.issues.map((i) => `${i.path}: ${i.message}`);
    const expected = [
      /^brokers\[0\]\.count: /,
      /^brokers\[0\]\.bogus: unknown key \(known: name, enabled, .*consumers/,
      /^brokers\[0\]\.consumers\[0\]\.backend: unknown backend "no-such-backend-xyz": no installed package provides it/,
      /^brokers\[0\]\.consumers\[1\]\.codec: unknown codec "yaml-ish"/,
      /^brokers\[0\]\.consumers\[2\]\.group_id: /,
      /^brokers\[0\]\.consumers\[3\]: /,
      /^brokers\[0\]\.producers\[0\]\.topic: environment variable MISSING_VAR is not set/,
      /^brokers\[0\]\.producers\[0\]\.shout: /,
      /^brokers\[0\]\.producers\[0\]\.linger_msx: unknown option \(known: topic, shout\)/,
      /^brokers\[0\]\.stores_out\[0\]\.backend: backend "sink" cannot be a store \(it offers: producer\)/,
      /^brokers\[0\]\.dead_letter\.routing_key: dead letters carry no metadata/,
      /^brokers\[1\]\.consumers\[0\]\.linger_ms: a producer setting; this node is a consumer/,
    ];
    for (const re of expected) expect(msgs, String(re)).toEqual(expect.arrayContaining([expect.stringMatching(re)]));
    expect(err.issues).toHaveLength(expected.length);
  });

  it("suggests the backend a misspelt name meant, without internal file paths", async () => {
    const rt = new Runtime({
      backends: [sinkBackend([])],
      importer: async (s) => Promise.reject(Object.assign(new Error(`Cannot find package '${s}' imported from /somewhere/internal/dist/index.js`), { code: "ERR_MODULE_NOT_FOUND" })),
    });
    const issues = await rt.validate({ brokers: [{ name: "b", consumers: [IN], producers: [{ backend: "sinc", topic: "t" }] }] });
    expect(issues).toHaveLength(1);
    expect(issues[0]!.message).toMatch(/unknown backend "sinc".*\(did you mean "sink"\?\)/);
    expect(issues[0]!.message).not.toMatch(/somewhere|dist\/index/);
  });

  it("reports a package that fails to load with its own error, not as unknown", async () => {
    const rt = new Runtime({
      importer: async () => Promise.reject(Object.assign(new Error("Cannot find package 'kafkajs' imported from /x/node_modules/@geowatch/kafka/dist/index.js"), { code: "ERR_MODULE_NOT_FOUND" })),
      discover: async () => [{ name: "@acme/stages", stages: ["wobble"] }],
    });
    const issues = await rt.validate({ brokers: [{ name: "b", consumers: [{ backend: "kafka" }], stages: [{ stage: "wobble" }] }] });
    expect(issues.map((i) => i.path)).toEqual(["brokers[0].consumers[0].backend", "brokers[0].stages[0].stage"]);
    expect(issues[0]!.message).toMatch(/backend "kafka": package "@geowatch\/kafka" failed to load: Cannot find package 'kafkajs'/);
    expect(issues[1]!.message).toMatch(/stage "wobble": package "@acme\/stages" failed to load/);
  });

  it("finds backends by package name: a short name is @geowatch/<name>, others their full name", async () => {
    const asked: string[] = [];
    const thirdParty = defineBackend({ name: "webhook", description: "x", producer: { options: z.strictObject({}), create: () => ({ send: async (rs) => rs.map(() => ({ ok: true as const })) }) } });
    const rt = new Runtime({
      importer: async (s) => {
        asked.push(s);
        if (s === "@acme/geowatch-webhook") return { webhookBackend: thirdParty };
        throw Object.assign(new Error(`Cannot find package '${s}'`), { code: "ERR_MODULE_NOT_FOUND" });
      },
    });
    expect(await rt.validate({ brokers: [{ name: "b", consumers: [IN], producers: [{ backend: "@acme/geowatch-webhook" }] }] })).toEqual([]);
    await rt.validate({ brokers: [{ name: "b", consumers: [IN], producers: [{ backend: "wfs" }] }] });
    expect(asked).toEqual(["@acme/geowatch-webhook", "@geowatch/wfs", "wfs"]);
  });

  it("resolves a codec an installed package declares, validates its options with their paths, and uses it", async () => {
    const shout = defineCodec({
      name: "shout",
      description: "upper-cases text",
      options: z.strictObject({ suffix: z.string().describe("appended").optional(), repeatCount: z.number().int().min(1).optional() }),
      create: (o) => ({
        name: "shout",
        contentType: "text/plain",
        decode: (v) => String(v),
        encode: (m) => `${String(m).toUpperCase().repeat(o.repeatCount ?? 1)}${o.suffix ?? ""}`,
      }),
    });
    const asked: string[] = [];
    const rt = new Runtime({
      backends: [sinkBackend([])],
      importer: async (s) => {
        asked.push(s);
        if (s === "@acme/codecs") return { shout };
        throw Object.assign(new Error(`Cannot find package '${s}'`), { code: "ERR_MODULE_NOT_FOUND" });
      },
      discover: async () => [{ name: "@acme/codecs", codecs: ["shout"] }],
    });
    const bad = await rt.validate({
      brokers: [{ name: "b", consumers: [IN], producers: [
        { backend: "sink", topic: "t", codec: { name: "shout", options: { repeat_count: 0, sufix: "!" } } },
        { backend: "sink", topic: "t", codec: "shoutt" },
      ] }],
    });
    expect(bad.map((i) => `${i.path}: ${i.message}`)).toEqual([
      expect.stringMatching(/^brokers\[0\]\.producers\[0\]\.codec\.options\.repeat_count: /),
      expect.stringMatching(/^brokers\[0\]\.producers\[0\]\.codec\.options\.sufix: unknown option \(known: suffix, repeat_count\)/),
      expect.stringMatching(/^brokers\[0\]\.producers\[1\]\.codec: unknown codec "shoutt" \(did you mean "shout"\?\)/),
    ]);
    const got: OutRecord[] = [];
    const rt2 = new Runtime({ backends: [sinkBackend(got)], codecs: [shout] });
    const app = await rt2.load({ brokers: [{ name: "b", consumers: [{ backend: "memory", topic: "rt-codec-in", codec: "plain" }], producers: [{ backend: "sink", topic: "t", codec: { name: "shout", options: { suffix: "!" } } }] }] });
    await namedMemoryChannel("rt-codec-in").producer().send([{ value: "hi" }]);
    await app.run({ untilIdle: true });
    await app.stop();
    expect(got.map((r) => String(r.value))).toEqual(["HI!"]);
    expect(asked).toEqual(["@acme/codecs"]);
  });

  it("gives an app one channel end from a node as config spells it, or every problem with its path", async () => {
    const rt = new Runtime({ backends: [sinkBackend([])] });
    const { producer, codec } = await rt.channel({ backend: "memory", topic: "rt-channel", codec: "json" }, "producer", "jobs");
    const { consumer } = await rt.channel({ backend: "memory", topic: "rt-channel" }, "consumer", "jobs");
    expect(codec?.name).toBe("json");
    await producer.send([{ value: codec!.encode({ job: 1 }) as string }]);
    const got = await consumer.receive(10, { waitMs: 1000 });
    expect(got.map((r) => JSON.parse(String(r.value)))).toEqual([{ job: 1 }]);
    await consumer.close?.();
    await producer.close?.();
    await expect(consumer.receive(1, { waitMs: 0 })).rejects.toThrow(/closed/i);
    const err = await rt.channel({ backend: "sink", topic: "t", group_id: "g", codec: "nope" }, "producer", "jobs").catch((e: unknown) => e as ConfigError);
    expect(err).toBeInstanceOf(ConfigError);
    expect((err as ConfigError).issues.map((i) => i.path).sort()).toEqual(["jobs.codec", "jobs.group_id"]);
    await expect(rt.channel({ backend: "sink", topic: "t" }, "consumer", "jobs")).rejects.toThrow(/jobs\.backend: backend "sink" cannot be a consumer/);
  });

  it("uses global defaults only as a fallback, and converts keys from snake_case at the option level only", async () => {
    const seen: Record<string, unknown>[] = [];
    const probe = defineBackend({
      name: "probe",
      description: "records its options",
      producer: {
        options: z.strictObject({
          region: z.string().optional(),
          topicPrefix: z.string().optional(),
          someOption: z.number().optional(),
          headerMap: z.record(z.string(), z.string()).optional(),
          tls: z.strictObject({ rejectUnauthorized: z.boolean() }).optional(),
        }),
        create: (o) => (seen.push(o), { send: async (rs) => rs.map(() => ({ ok: true as const })) }),
      },
    });
    const rt = new Runtime({ backends: [probe] });
    await rt.load({
      defaults: { probe: { region: "eu", topic_prefix: "dflt.", group_id: "only-for-consumers" } },
      brokers: [{ name: "b", consumers: [IN], producers: [{ backend: "probe", topic_prefix: "mine.", header_map: { x_trace_id: "a" }, tls: { reject_unauthorized: false }, options: { some_option: 1 } }] }],
    });
    expect(seen[0]).toEqual({ region: "eu", topicPrefix: "mine.", someOption: 1, headerMap: { x_trace_id: "a" }, tls: { rejectUnauthorized: false } });
  });

  it("resolves relative path options and secret files from the config file's folder", async () => {
    const dir = mkdtempSync(join(tmpdir(), "gw-rt-"));
    try {
      writeFileSync(join(dir, "secret.txt"), "s3cr3t\n");
      let got: unknown;
      const files = defineBackend({
        name: "files",
        description: "x",
        producer: { options: z.strictObject({ path: z.string().meta({ path: true }), token: z.string() }), create: (o) => ((got = o), { send: async (rs) => rs.map(() => ({ ok: true as const })) }) },
      });
      await new Runtime({ backends: [files], baseDir: dir }).load({
        brokers: [{ name: "b", consumers: [IN], producers: [{ backend: "files", path: "out/x.ndjson", token: "${file:secret.txt}" }] }],
      });
      expect(got).toEqual({ path: join(dir, "out/x.ndjson"), token: "s3cr3t" });
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });

  it("a broker with no consumers or stores_in is an error", async () => {
    const rt = new Runtime({ backends: [sinkBackend([])] });
    expect(await rt.validate({ brokers: [{ name: "b", producers: [{ backend: "sink", topic: "t" }] }] })).toEqual([
      { path: "brokers[0].consumers", message: expect.stringMatching(/at least one consumer or stores_in/) },
    ]);
    expect(await new Runtime({ backends: [sinkBackend([])], pushOnly: true }).validate({ brokers: [{ name: "b", producers: [{ backend: "sink", topic: "t" }] }] })).toEqual([]);
  });

  it("validate has no side effects: stages are built, then closed, never opened", async () => {
    const events: string[] = [];
    const stateful = defineStage({
      name: "stateful",
      description: "x",
      options: z.strictObject({ db: z.string() }),
      create: () => (events.push("create"), { name: "stateful", open: async () => void events.push("open"), process: (b) => ({ pass: b }), close: async () => void events.push("close") }),
    });
    const rt = new Runtime({ stages: [stateful] });
    expect(await rt.validate({ brokers: [{ name: "b", consumers: [IN], stages: [{ stage: "stateful", db: "x.db" }] }] })).toEqual([]);
    expect(events).toEqual(["create", "close"]);
  });

  it("retries a failed connect and reports readiness", async () => {
    const connects = { n: 0, failFirst: 2 };
    const rt = new Runtime({ backends: [sinkBackend([], connects)] });
    const app = await rt.load({ brokers: [{ name: "b", max_tries: 4, consumers: [IN], producers: [{ name: "out", backend: "sink", topic: "t" }] }] });
    expect(app.ready()).toBe(false);
    await app.connect();
    expect(connects.n).toBe(3);
    expect(app.ready()).toBe(true);
    expect(app.health().find((h) => h.node === "out")).toMatchObject({ broker: "b", role: "producer", backend: "sink", state: "ready" });
    await app.stop();
    expect(app.health().find((h) => h.node === "out")!.state).toBe("closed");
  });

  it("shows a refusing dead-letter sink as failing and not ready", async () => {
    let refuse = true;
    const picky = defineBackend({
      name: "picky",
      description: "x",
      producer: { options: z.strictObject({}), create: () => ({ send: async (rs) => rs.map(() => (refuse ? { ok: false as const, error: new Error("no route"), retryable: false } : { ok: true as const })) }) },
    });
    const rt = new Runtime({ backends: [picky, sinkBackend([])] });
    const app = await rt.load({ brokers: [{ name: "b", consumers: [{ backend: "memory", topic: "dlq-in", codec: "json" }], producers: [{ backend: "sink", topic: "t" }], dead_letter: { backend: "picky" } }] });
    await namedMemoryChannel("dlq-in").producer().send([{ value: "{not json" }]);
    const running = app.run({ untilIdle: true });
    const deadline = Date.now() + 5000;
    while (app.brokers[0]!.stats.deadLetterFailures === 0 && Date.now() < deadline) await new Promise((r) => setTimeout(r, 10));
    expect(app.ready()).toBe(false);
    expect(app.health().find((h) => h.role === "dead_letter")).toMatchObject({ state: "failing", error: expect.stringMatching(/refused 1 dead letter\(s\): no route/) });
    refuse = false;
    await running;
    expect(app.ready()).toBe(true);
    await app.stop();
  });

  it("publishes the config schema as JSON Schema, with each backend's options by role, as config spells them", async () => {
    const schema = configJsonSchema({ backends: [roleBackend] });
    expect(schema.type).toBe("object");
    const text = JSON.stringify(schema);
    expect(text).toContain("filter_metadata");
    expect(text).toContain('"group_id"');
    expect(text).toContain('"routing_key"');
    expect(text).not.toContain('"groupId"');
  });
});
