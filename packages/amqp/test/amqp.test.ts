import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { isGeoWatchError, namedMemoryChannel, Runtime, type Consumer, type InRecord, type OutRecord, type Producer } from "@geowatch/core";
import type { ChannelModel } from "amqplib";
import { amqpBackend, amqpConsumer, amqpProducer, routingKeyFor } from "../src/index.js";
import { createAmqpConsumer } from "../src/consumer.js";
import { admin, amqpUrl, deleteAll, messageCount, quiet, receiveN, server, text, uniqueName } from "./helpers.js";

let conn: ChannelModel;
const queues: string[] = [];
const exchanges: string[] = [];
const open: Array<{ close?(): Promise<void> }> = [];

function track<T extends { close?(): Promise<void> }>(x: T): T {
  open.push(x);
  return x;
}

function consumer(opts: Parameters<typeof amqpConsumer>[0]): Consumer {
  if (opts.queue) queues.push(opts.queue);
  if (opts.exchange) exchanges.push(opts.exchange);
  return track(amqpConsumer({ url: amqpUrl(), ...opts }, { logger: quiet }));
}

function producer(opts: Parameters<typeof amqpProducer>[0]): Producer {
  return track(amqpProducer({ url: amqpUrl(), ...opts }));
}

async function rejection(p: Promise<unknown>): Promise<Error> {
  return p.then(
    () => {
      throw new Error("expected a rejection");
    },
    (e: unknown) => e as Error,
  );
}

beforeAll(async () => {
  conn = await admin();
});

afterAll(async () => {
  for (const x of open) await x.close?.().catch(() => {});
  await deleteAll(conn, queues, exchanges).catch(() => {});
  await conn?.close().catch(() => {});
});

describe("amqp options", () => {
  it("reports every problem with its path, as config spells it", () => {
    const bad = amqpBackend.consumer!.parse({ queue: "q", url: "http://x", prefetch: 0, exchange_type: "nope", extra: 1 }, { role: "consumer" });
    expect(bad.ok ? [] : bad.problems.map((p) => p.path).sort()).toEqual(["exchange_type", "extra", "prefetch", "url"]);
    const ok = amqpBackend.consumer!.parse({ queue: "q", exchange: "x", dead_letter_exchange: "dlx", requeue_on_nack: false }, { role: "consumer" });
    expect(ok).toEqual({ ok: true, options: { queue: "q", exchange: "x", deadLetterExchange: "dlx", requeueOnNack: false } });
    // Programmatic use: the full schema, one error listing every problem.
    expect(() => amqpConsumer({ prefetch: -1, extra: 1 } as never)).toThrow(/prefetch: .*extra: unknown option/);
    expect(() => amqpConsumer({})).toThrow(/needs `queue`/);
  });

  it("a consumer without queue fails parse at queue; producer-only options are unknown on a consumer and vice versa", () => {
    expect(amqpBackend.consumer!.parse({ exchange: "x" }, { role: "consumer" })).toEqual({ ok: false, problems: [{ path: "queue", message: "required for a consumer" }] });
    const c = amqpBackend.consumer!.parse({ queue: "q", routing_key: "a.b" }, { role: "consumer" });
    expect(c.ok ? [] : c.problems).toEqual([{ path: "routing_key", message: expect.stringMatching(/^unknown option \(known: url, password, queue, exchange, exchange_type, bindings, declare, prefetch, /) as string }]);
    const p = amqpBackend.producer!.parse({ exchange: "x", prefetch: 5, bindings: ["#"] }, { role: "producer" });
    expect(p.ok ? [] : p.problems.map((x) => x.path)).toEqual(["prefetch", "bindings"]);
  });

  it("a dead-letter sink whose routing key reads metadata fails parse (dead letters carry none)", () => {
    const dl = { role: "producer", deadLetter: true } as const;
    const r = amqpBackend.producer!.parse({ exchange: "geowatch.dead", routing_key: "dead.{metadata.actiontype}" }, dl);
    expect(r.ok).toBe(false);
    const [problem, ...rest] = r.ok ? [] : r.problems;
    expect(rest).toEqual([]);
    expect(problem!.path).toBe("routing_key");
    expect(problem!.message).toMatch(/routing key "dead.\{metadata.actiontype\}" reads \{metadata.actiontype\} from the record's metadata, which dead letters never carry/);
    expect(problem!.message).toMatch(/headers x-geowatch-reason, x-geowatch-source and its source's headers, and no metadata/);
    // The default template reads metadata too; a fixed key (or a queue name) is fine; ordinary producers may template.
    const dflt = amqpBackend.producer!.parse({ exchange: "geowatch.dead" }, dl);
    expect(dflt.ok ? "" : dflt.problems[0]!.message).toMatch(/^the default routing key "\{actiontype\}.\{targettype\}" \(no routing_key or queue set\) reads \{actiontype\}, \{targettype\} from the record's metadata/);
    expect(amqpBackend.producer!.parse({ exchange: "geowatch.dead", routing_key: "geonode.failed" }, dl).ok).toBe(true);
    expect(amqpBackend.producer!.parse({ queue: "dead" }, dl).ok).toBe(true);
    expect(amqpBackend.producer!.parse({ exchange: "e", routing_key: "{metadata.actiontype}" }, { role: "producer" }).ok).toBe(true);
  });

  it("validate names the dead-letter node's routing_key path in a config", async () => {
    const rt = new Runtime({ backends: [amqpBackend] });
    const issues = await rt.validate({
      brokers: [{ name: "b", consumers: [{ backend: "memory", topic: "in" }], producers: [{ backend: "amqp", exchange: "e", routing_key: "{actiontype}" }], dead_letter: { backend: "amqp", exchange: "geowatch.dead", routing_key: "{metadata.actiontype}" } }],
    });
    expect(issues.map((i) => i.path)).toEqual(["brokers[0].dead_letter.routing_key"]);
    expect(issues[0]!.message).toMatch(/dead letters never carry/);
  });

  it("docs and JSON Schema are derived from the schema", () => {
    const docs = amqpBackend.consumer!.docs();
    expect(docs.find((d) => d.name === "queue")).toMatchObject({ required: true, type: "string" });
    expect(docs.find((d) => d.name === "url")).toMatchObject({ env: "GEOWATCH_AMQP_URL", default: "amqp://guest:guest@127.0.0.1:5672", required: false });
    expect(docs.find((d) => d.name === "exchange_type")).toMatchObject({ type: '"topic" | "direct" | "fanout" | "headers"', default: "topic" });
    expect(amqpBackend.producer!.docs().map((d) => d.name)).toEqual(["url", "password", "queue", "exchange", "exchange_type", "routing_key", "durable", "persistent", "mandatory", "heartbeat", "connect_timeout_ms"]);
    for (const d of [...docs, ...amqpBackend.producer!.docs()]) expect(d.description, d.name).not.toBe("");
    const js = amqpBackend.producer!.jsonSchema() as { properties: Record<string, { secret?: boolean }> };
    expect(js.properties.password!.secret).toBe(true);
    expect(Object.keys(js.properties)).toContain("routing_key");
  });

  it("templates routing keys from metadata", () => {
    expect(routingKeyFor("{targettype}.{actiontype}", { targettype: "layer", actiontype: "uploaded" })).toBe("layer.uploaded");
    expect(routingKeyFor("geonode.{a.b}", { a: { b: 7 } })).toBe("geonode.7");
    expect(() => routingKeyFor("{actiontype}.{targettype}", { actiontype: "x" })).toThrow(/metadata.targettype/);
  });
});

describe("amqp against RabbitMQ", () => {
  it("routes through a topic exchange with patterns, passing content type, headers and key", async () => {
    const exchange = uniqueName("geonode");
    const all = consumer({ exchange, queue: uniqueName("layers"), bindings: ["layer.*"] });
    const uploads = consumer({ exchange, queue: uniqueName("uploads"), bindings: ["layer.uploaded"] });
    await all.connect!();
    await uploads.connect!();
    const p = producer({ exchange, routingKey: "{targettype}.{actiontype}" });
    const env = (targettype: string, actiontype: string): OutRecord => ({
      value: JSON.stringify({ metadata: { targettype, actiontype }, data: { name: `${targettype}-${actiontype}` } }),
      metadata: { targettype, actiontype },
      contentType: "application/json",
      headers: { "x-layer": targettype },
      key: `${targettype}:${actiontype}`,
    });
    const results = await p.send([
      env("layer", "uploaded"),
      env("layer", "deleted"),
      env("map", "created"),
      { value: "override", topic: "layer.custom" },
      { value: "no metadata" },
    ]);
    expect(results.map((r) => r.ok)).toEqual([true, true, true, true, false]);
    const bad = results[4]!;
    expect(!bad.ok && bad.retryable).toBe(false);
    expect(!bad.ok && bad.error.message).toMatch(/metadata\.targettype/);

    const got = await receiveN(all, 3);
    expect(got.map(text).sort()).toEqual(
      [
        '{"metadata":{"targettype":"layer","actiontype":"deleted"},"data":{"name":"layer-deleted"}}',
        '{"metadata":{"targettype":"layer","actiontype":"uploaded"},"data":{"name":"layer-uploaded"}}',
        "override",
      ].sort(),
    );
    const first = got.find((r) => text(r).includes("uploaded"))!;
    expect(first.key).toBe("layer:uploaded");
    expect(first.headers?.["x-layer"]).toBe("layer");
    expect(first.redeliveries).toBe(0);
    expect(typeof first.timestamp).toBe("number");
    expect(first.handle).toMatchObject({ deliveryTag: expect.any(Number) });
    await all.ack!(got);

    const onlyUploads = await receiveN(uploads, 2, 1500);
    expect(onlyUploads.map(text)).toEqual([expect.stringContaining('"uploaded"')]);
    await uploads.ack!(onlyUploads);
    expect(await all.receive(10, { waitMs: 300 })).toEqual([]);
  });

  it("acks, nacks with requeue (redelivered) and without (dead-lettered)", async () => {
    const dlx = uniqueName("dlx");
    const dlq = consumer({ exchange: dlx, exchangeType: "fanout", queue: uniqueName("dlq"), bindings: [""] });
    await dlq.connect!();
    const queue = uniqueName("work");
    const c = consumer({ queue, deadLetterExchange: dlx, prefetch: 10 });
    await c.connect!();
    const p = producer({ routingKey: queue });
    expect((await p.send(["ack me", "requeue me", "dead me"].map((value) => ({ value })))).every((r) => r.ok)).toBe(true);

    const got = await receiveN(c, 3);
    const by = (v: string) => got.filter((r) => text(r) === v);
    await c.ack!(by("ack me"));
    await c.nack!(by("requeue me"), { requeue: true });
    await c.nack!(by("dead me"), { requeue: false, reason: "test" });
    // Settling twice must not send a second ack for the same tag (that would close the channel).
    await c.ack!(by("ack me"));

    const again = await receiveN(c, 1);
    expect(again.map(text)).toEqual(["requeue me"]);
    expect(again[0]!.redeliveries).toBeGreaterThanOrEqual(1);
    await c.ack!(again);

    const dead = await receiveN(dlq, 1);
    expect(dead.map(text)).toEqual(["dead me"]);
    expect(dead[0]!.headers?.["x-death"]).toContain(queue);
    await dlq.ack!(dead);

    expect(await c.receive(10, { waitMs: 300 })).toEqual([]);
    await c.close!();
    expect(await messageCount(conn, queue)).toBe(0);
  });

  it("requeueOnNack: false dead-letters even when asked to requeue", async () => {
    const queue = uniqueName("poison");
    const c = consumer({ queue, requeueOnNack: false });
    await c.connect!();
    await producer({ routingKey: queue }).send([{ value: "poison" }]);
    const got = await receiveN(c, 1);
    await c.nack!(got, { requeue: true });
    expect(await c.receive(10, { waitMs: 500 })).toEqual([]);
    expect(await messageCount(conn, queue)).toBe(0);
  });

  it("redelivers unacked messages to the next consumer after close", async () => {
    const queue = uniqueName("unacked");
    const first = consumer({ queue, prefetch: 3 });
    await first.connect!();
    const sent = Array.from({ length: 6 }, (_, i) => `m${i}`);
    await producer({ routingKey: queue }).send(sent.map((value) => ({ value })));
    const got = await receiveN(first, 6, 3000);
    // prefetch bounds what is in flight: 3 until something is settled.
    expect(got.length).toBe(3);
    // Acking one frees a slot, so RabbitMQ may push a fourth into the buffer before close.
    await first.ack!(got.slice(0, 1));
    await first.close!();

    const second = consumer({ queue, prefetch: 10 });
    const rest = await receiveN(second, 5);
    expect(rest.map(text).sort()).toEqual(sent.filter((v) => v !== text(got[0]!)).sort());
    expect(rest.filter((r) => (r.redeliveries ?? 0) >= 1).length).toBeGreaterThanOrEqual(2);
    await second.ack!(rest);
  });

  it("confirms each record: ok with an id once RabbitMQ has it, a failure when unroutable (mandatory)", async () => {
    const exchange = uniqueName("confirms");
    const queue = uniqueName("confirmed");
    const c = consumer({ exchange, queue, bindings: ["routed.#"] });
    await c.connect!();
    const p = producer({ exchange, mandatory: true, routingKey: "routed.x" });
    await p.ensureTopic!(exchange, { create: false });
    const results = await p.send([{ value: "a" }, { value: "b", topic: "nowhere" }, { value: "c" }]);
    expect(results.map((r) => r.ok)).toEqual([true, false, true]);
    expect(results[0]!.ok && results[0]!.id).toMatch(/^[0-9a-f-]{36}$/);
    const failed = results[1]!;
    expect(!failed.ok && failed.error.message).toMatch(/no queue is bound to exchange ".*" for key "nowhere"/);
    await c.close!();
    // Confirmed means on the server: both are in the durable queue already.
    expect(await messageCount(conn, queue)).toBe(2);
  });

  it("ensureTopic declares or checks the exchange", async () => {
    const exchange = uniqueName("ensure");
    exchanges.push(exchange);
    const p = producer({ exchange });
    const missing = await rejection(p.ensureTopic!(exchange, { create: false }));
    expect(isGeoWatchError(missing, "NOT_FOUND")).toBe(true);
    expect(missing.message).toMatch(new RegExp(`exchange "${exchange.replace(/\./g, "\\.")}" on amqp://guest@127\\.0\\.0\\.1:\\d+: does not exist`));
    await p.ensureTopic!(exchange, { create: true });
    await p.ensureTopic!(exchange, { create: false });
    // The producer stays usable after a failed check.
    expect((await p.send([{ value: "x", topic: "k" }]))[0]!.ok).toBe(true);
  });

  it("health(): not ok while the consumer's channel is gone and it reconnects, ok again once it is back", async () => {
    const q = uniqueName("health");
    const ch = await conn.createChannel();
    await ch.assertQueue(q, { durable: true });
    // The backend's own health hook, on the raw object (core's runtime layer reads it as `state`/`lastError`).
    queues.push(q);
    const c = track(createAmqpConsumer({ url: amqpUrl(), queue: q, declare: false, reconnectMaxMs: 200 }, { logger: quiet }));
    await c.connect!();
    expect(c.health!()).toEqual({ ok: true });
    // The server cancels the consumer when its queue goes; without `declare` it cannot come back until the queue does.
    await ch.deleteQueue(q);
    const deadline = Date.now() + 10_000;
    while (c.health!().ok && Date.now() < deadline) await new Promise((r) => setTimeout(r, 20));
    const down = c.health!();
    expect(down.ok).toBe(false);
    expect(down.error).toMatch(new RegExp(`\\[geowatch\\] \\[amqp\\] consumer of queue "${q}" .*reconnecting`));
    await ch.assertQueue(q, { durable: true });
    while (!c.health!().ok && Date.now() < deadline + 10_000) await new Promise((r) => setTimeout(r, 50));
    expect(c.health!()).toEqual({ ok: true });
    await ch.close();
  });

  it("explains wrong credentials, an unreachable server and a missing queue", async () => {
    const url = new URL(amqpUrl());
    url.password = "wrong-password";
    const auth = await rejection(amqpConsumer({ url: url.href, queue: "q" }).receive(1, { waitMs: 100 }));
    expect(isGeoWatchError(auth, "AUTH")).toBe(true);
    expect(auth.message).toContain(`amqp://guest@${url.host}`);
    expect(auth.message).toMatch(/access refused/);
    expect(auth.message).not.toContain("wrong-password");

    const viaEnv = await rejection(amqpProducer({ url: amqpUrl() }, { secret: (ref) => (ref === "GEOWATCH_AMQP_PASSWORD" ? "nope" : undefined) }).connect!());
    expect(isGeoWatchError(viaEnv, "AUTH")).toBe(true);

    const down = await rejection(amqpConsumer({ url: "amqp://guest:guest@127.0.0.1:1", queue: "q" }).connect!());
    expect(isGeoWatchError(down, "CONNECT")).toBe(true);
    expect(down.message).toMatch(/cannot connect consumer of queue "q" on amqp:\/\/guest@127\.0\.0\.1:1: server unreachable \(ECONNREFUSED\)/);

    const name = uniqueName("absent");
    const missing = await rejection(amqpConsumer({ url: amqpUrl(), queue: name, declare: false }).connect!());
    expect(isGeoWatchError(missing, "NOT_FOUND")).toBe(true);
    expect(missing.message).toContain(`checking queue "${name}"`);
    expect(missing.message).toMatch(/does not exist/);
  });
  it("a dead-letter sink with a fixed routing key gets what validate says dead letters carry", async () => {
    const queue = uniqueName("dead");
    queues.push(queue);
    const ch = await conn.createChannel();
    await ch.assertQueue(queue, { durable: true });
    await ch.close();
    const topic = uniqueName("dl-in");
    const rt = new Runtime({ backends: [amqpBackend] });
    const config = {
      brokers: [{ name: "b", consumers: [{ backend: "memory", topic, codec: "json" }], producers: [{ backend: "memory", topic: `${topic}.out` }], dead_letter: { backend: "amqp", url: amqpUrl(), routing_key: queue } }],
    };
    expect(await rt.validate(config)).toEqual([]);
    const app = await rt.load(config);
    await namedMemoryChannel(topic).producer().send([{ value: "{not json", headers: { "x-trace": "t1" } }]);
    const [stats] = await app.run({ untilIdle: true });
    await app.stop();
    expect(stats!.deadLettered).toBe(1);
    const c = consumer({ queue });
    const [dead] = await receiveN(c, 1);
    expect(dead).toBeDefined();
    expect(dead!.headers).toMatchObject({ "x-geowatch-source": expect.any(String) as string, "x-trace": "t1" });
    expect(dead!.headers!["x-geowatch-reason"]).toMatch(/./);
    const body = JSON.parse(text(dead!)) as Record<string, unknown>;
    expect(body.reason).toBe(dead!.headers!["x-geowatch-reason"]);
    expect(body.metadata).toBeUndefined();
    await c.ack!([dead!]);
  });
});

describe("lifecycle (core's runtime layer around the raw I/O)", () => {
  it("connects once under concurrent first calls, and refuses calls after close", async () => {
    const q = uniqueName("life");
    queues.push(q);
    const c = track(amqpConsumer({ url: amqpUrl(), queue: q }, { logger: quiet }));
    const p = track(amqpProducer({ url: amqpUrl(), queue: q }));
    expect([c.state, p.state]).toEqual(["idle", "idle"]);
    await Promise.all([c.connect(), c.receive(1, { waitMs: 0 }), c.ack!([])]);
    const sent = await Promise.all([p.send([{ value: "a" }]), p.send([{ value: "b" }]), p.ensureTopic!(q, { create: false }).then(() => [])]);
    expect(sent.flat().map((r) => r.ok)).toEqual([true, true]);
    expect([c.state, p.state]).toEqual(["ready", "ready"]);
    // One connect: one consumer on the queue, not one per concurrent first call.
    const ch = await conn.createChannel();
    expect((await ch.checkQueue(q)).consumerCount).toBe(1);
    await ch.close();
    const got = await receiveN(c, 2);
    expect(got.map(text).sort()).toEqual(["a", "b"]);
    await c.ack!(got);
    await c.close();
    await c.close(); // once
    await p.close();
    await expect(c.receive(1, { waitMs: 0 })).rejects.toThrow(new RegExp(`"amqp consumer "${q}"" is closed`));
    await expect(c.ack!(got)).rejects.toMatchObject({ code: "CLOSED" });
    await expect(p.send([{ value: "c" }])).rejects.toThrow(/"amqp producer" is closed/);
    await expect(p.ensureTopic!(q, { create: false })).rejects.toMatchObject({ code: "CLOSED" });
  });
});

describe("amqp fault: RabbitMQ stops and restarts mid-flow", () => {
  it("loses nothing (delivered ⊇ produced) and counts duplicates", { timeout: 180_000 }, async () => {
    const queue = uniqueName("fault");
    const total = 400;
    const lost: string[] = [];
    const logger = { ...quiet, warn: (msg: string) => void lost.push(msg) };
    queues.push(queue);
    const c = track(amqpConsumer({ url: amqpUrl(), queue, prefetch: 20, reconnectMaxMs: 1000, heartbeat: 5 }, { logger }));
    await c.connect!();
    const p = producer({ routingKey: queue, reconnectMaxMs: 1000 });

    const produced = new Set<string>();
    const delivered = new Map<string, number>();
    let producing = true;

    const produce = async () => {
      for (let i = 0; i < total; i += 5) {
        let batch = Array.from({ length: Math.min(5, total - i) }, (_, k) => `f${i + k}`);
        while (batch.length > 0) {
          try {
            const res = await p.send(batch.map((value) => ({ value })));
            res.forEach((r, k) => r.ok && produced.add(batch[k]!));
            batch = batch.filter((_, k) => !res[k]!.ok);
          } catch {
            // Broker down: the batch is retried as a whole.
          }
          if (batch.length > 0) await new Promise((r) => setTimeout(r, 250));
        }
        // Paced, so the restart falls in the middle of the flow.
        await new Promise((r) => setTimeout(r, 60));
      }
      producing = false;
    };

    const consume = async () => {
      const deadline = Date.now() + 150_000;
      let held: InRecord[] = [];
      while (Date.now() < deadline && (producing || restarting || [...produced].some((v) => !delivered.has(v)))) {
        const got = await c.receive(20, { waitMs: 500 });
        for (const r of got) delivered.set(text(r), (delivered.get(text(r)) ?? 0) + 1);
        // Ack one receive late, so some acks reach across the restart and must be dropped, not misdirected.
        await c.ack!(held);
        held = got;
      }
      await c.ack!(held);
      // Drain what is still queued (redeliveries, re-sent batches) so the queue ends empty.
      for (let quiet = 0; quiet < 3 && Date.now() < deadline; ) {
        const got = await c.receive(20, { waitMs: 500 });
        quiet = got.length === 0 ? quiet + 1 : 0;
        for (const r of got) delivered.set(text(r), (delivered.get(text(r)) ?? 0) + 1);
        await c.ack!(got);
      }
    };

    let restarting = true;
    let producedAtStop = 0;
    let producedAtRestart = 0;
    const fault = async () => {
      while (produced.size < total / 4) await new Promise((r) => setTimeout(r, 20));
      producedAtStop = produced.size;
      await server("stop");
      await new Promise((r) => setTimeout(r, 1000));
      await server("start");
      producedAtRestart = produced.size;
      restarting = false;
    };

    const before = Date.now();
    await Promise.all([produce(), consume(), fault()]);
    const missing = [...produced].filter((v) => !delivered.has(v));
    const duplicates = [...delivered.values()].reduce((n, k) => n + (k - 1), 0);
    console.log(
      `fault test: produced ${produced.size} (${producedAtStop} before the stop, ${producedAtRestart} before the restart), delivered ${delivered.size} distinct, ${duplicates} duplicates, ${Date.now() - before} ms`,
    );
    expect(producedAtRestart, "the restart happened mid-flow").toBeLessThan(total);
    expect(missing).toEqual([]);
    expect(produced.size).toBe(total);
    // One loss of the channel (the restart): a stale ack sent to the new channel would have closed it again.
    expect(lost.filter((m) => /lost its channel/.test(m))).toHaveLength(1);

    // After recovery the consumer is consistent: nothing left over, and no channel errors from stale tags.
    await c.close!();
    expect(await messageCount(await reopenAdmin(), queue)).toBe(0);
  });
});

/** The admin connection died with the broker; open a fresh one. */
async function reopenAdmin(): Promise<ChannelModel> {
  await conn.close().catch(() => {});
  conn = await admin();
  return conn;
}
