import { afterEach, describe, expect, it } from "vitest";
import { Broker, guardProducer, isGeoWatchError, jsonCodec, memoryChannel, templateCodec } from "@geowatch/core";
import type { InRecord, Logger, MemoryChannel, OutRecord, Producer, SendResult } from "@geowatch/core";
import { producerSuite, startSlackServer } from "@geowatch/testkit";
import type { SlackServer, SlackServerOptions } from "@geowatch/testkit";
import { slackBackend, slackProducer } from "../src/index.js";
import type { SlackProducerOptions } from "../src/index.js";

const TOKEN = "xoxb-geowatch-test";

// The Slack API server runs in this process (no real Slack can run here): see @geowatch/testkit startSlackServer.
producerSuite("slack", {
  capabilities: {},
  setup: async () => {
    const server = await startSlackServer();
    return {
      producer: () => slackProducer({ token: TOKEN, apiUrl: server.url, channel: "#general", ratePerChannel: 200 }),
      readBack: async (n, timeoutMs) => (await server.waitForMessages(n, timeoutMs)).map((m) => m.text ?? ""),
      teardown: () => server.close(),
    };
  },
});

let servers: SlackServer[] = [];
let producers: Producer[] = [];
afterEach(async () => {
  await Promise.all(producers.map(async (p) => p.close?.()));
  await Promise.all(servers.map((s) => s.close()));
  servers = [];
  producers = [];
});

async function serve(opts: SlackServerOptions = {}): Promise<SlackServer> {
  const s = await startSlackServer(opts);
  servers.push(s);
  return s;
}

function producer(server: SlackServer, opts: Partial<SlackProducerOptions> = {}, logger?: Logger): Producer {
  const p = slackProducer({ token: TOKEN, apiUrl: server.url, ratePerChannel: 100, ...opts }, logger ? { logger } : {});
  producers.push(p);
  return p;
}

const rec = (value: string, extra: Partial<OutRecord> = {}): OutRecord => ({ value, ...extra });
const okTexts = (res: SendResult[]) => res.map((r) => (r.ok ? "ok" : r.error.message));

/** A logger that keeps every line, to prove the token never appears. */
function capture(): Logger & { lines: string[] } {
  const lines: string[] = [];
  const put = (msg: string, fields?: Record<string, unknown>) => void lines.push(`${msg} ${JSON.stringify(fields ?? {})}`);
  return { lines, debug: put, info: put, warn: put, error: put };
}

describe("slack producer", () => {
  it("posts every record of a batch, in order per channel, with the template codec's text", async () => {
    const server = await serve();
    const codec = templateCodec({ format: "slack", templates: { "create.layer": "New layer *{{data.name}}*", default: "{{metadata.actiontype}} {{metadata.targettype}}" } });
    const events = [
      { metadata: { actiontype: "create", targettype: "layer" }, data: { name: "roads <b>" } },
      { metadata: { actiontype: "delete", targettype: "style" }, data: {} },
      { metadata: { actiontype: "create", targettype: "layer" }, data: { name: "rivers" } },
    ];
    const p = producer(server, { channel: "alerts" });
    const res = await p.send(events.map((e) => rec(String(codec.encode(e)), { metadata: e.metadata })));
    expect(okTexts(res)).toEqual(["ok", "ok", "ok"]);
    expect(server.messagesIn("alerts").map((m) => m.text)).toEqual(["New layer *roads &lt;b&gt;*", "delete style", "New layer *rivers*"]);
    expect(server.messages.every((m) => m.token === TOKEN), "the token goes in the Authorization header").toBe(true);
    expect(res.every((r) => r.ok && /^C0000ALERTS\/\d+\.\d+$/.test(r.id ?? "")), "results carry channel/ts").toBe(true);
  });

  it("takes the channel from the option, a template over metadata, the node's topic, or metadata.recipient", async () => {
    const server = await serve();
    await producer(server, { channel: "#general" }).send([rec("fixed")]);
    await producer(server, { channel: "{{metadata.team}}" }).send([rec("templated", { metadata: { team: "alerts" } })]);
    await producer(server, { channel: "{{metadata.team}}-x" }).send([rec("templated", { metadata: { team: "alerts" } })]);
    await producer(server).send([rec("topic", { topic: "C0000ALERTS" }), rec("recipient", { metadata: { recipient: "#general" } })]);
    expect(server.messagesIn("general").map((m) => m.text)).toEqual(["fixed", "recipient"]);
    expect(server.messagesIn("alerts").map((m) => m.text)).toEqual(["templated", "topic"]);
    expect(server.calls.find((c) => c.result === "channel_not_found")?.channel, "the template rendered alerts-x").toBe("alerts-x");
  });

  it("an unknown channel is a non-retryable per-record error with Slack's error; the rest of the batch is posted", async () => {
    const server = await serve();
    const p = producer(server);
    const res = await p.send([rec("a", { topic: "general" }), rec("b", { topic: "#nowhere" }), rec("c", { topic: "general" })]);
    expect(res[0]!.ok && res[2]!.ok).toBe(true);
    const bad = res[1]!;
    expect(bad.ok).toBe(false);
    if (!bad.ok) {
      expect(bad.retryable).toBe(false);
      expect(bad.error.message).toMatch(/\[slack\].*"#nowhere".*channel_not_found/);
    }
    expect(server.messages.map((m) => m.text)).toEqual(["a", "c"]);
  });

  it("a record without a channel, or whose channel template needs a missing field, fails alone", async () => {
    const server = await serve();
    const res = await producer(server).send([rec("no channel"), rec("ok", { topic: "general" })]);
    expect(res[0]!.ok || res[0]!.retryable).toBe(false);
    const res2 = await producer(server, { channel: "{{metadata.recipient}}" }).send([rec("x", { metadata: {} }), rec("y", { metadata: { recipient: "general" } })]);
    expect(res2[0]!.ok).toBe(false);
    if (!res2[0]!.ok) expect(res2[0]!.error.message).toMatch(/recipient/);
    expect(server.messages.map((m) => m.text)).toEqual(["ok", "y"]);
  });

  it("paces each channel to rate_per_channel: no 429 from a server that allows that rate, channels independent", async () => {
    // burst 2 absorbs the jitter of request arrival; without pacing, five posts at once would still be limited.
    const server = await serve({ ratePerChannel: 4, burst: 2 });
    const p = producer(server, { ratePerChannel: 4 });
    const started = Date.now();
    const res = await p.send([...[0, 1, 2, 3, 4].map((i) => rec(`g${i}`, { topic: "general" })), rec("a0", { topic: "alerts" }), rec("a1", { topic: "alerts" })]);
    const took = Date.now() - started;
    expect(okTexts(res).every((r) => r === "ok")).toBe(true);
    expect(server.calls.filter((c) => c.status === 429), "the pacing keeps under the server's limit").toEqual([]);
    expect(server.messagesIn("general").map((m) => m.text)).toEqual(["g0", "g1", "g2", "g3", "g4"]);
    expect(server.messagesIn("alerts").map((m) => m.text)).toEqual(["a0", "a1"]);
    // Five posts at 4/s take at least four intervals of 250 ms; the other channel does not wait for them.
    expect(took).toBeGreaterThanOrEqual(950);
    expect(took, "paced, not stalled").toBeLessThan(15_000);
  });

  it("a 429 with Retry-After is waited out and the same message posted again: nothing lost, nothing reordered", async () => {
    const server = await serve();
    const log = capture();
    const p = producer(server, { channel: "general" }, log);
    server.rateLimitNext(1, 1, "chat.postMessage");
    const started = Date.now();
    const res = await p.send(["m0", "m1", "m2", "m3"].map((v) => rec(v)));
    expect(okTexts(res)).toEqual(["ok", "ok", "ok", "ok"]);
    expect(Date.now() - started, "waited for Retry-After: 1").toBeGreaterThanOrEqual(950);
    expect(server.messages.map((m) => m.text)).toEqual(["m0", "m1", "m2", "m3"]);
    expect(server.calls.filter((c) => c.status === 429)).toHaveLength(1);
    expect(log.lines.some((l) => l.includes("rate limited"))).toBe(true);
  });

  it("posting faster than the server allows: every 429 is waited out, order and count kept", async () => {
    const server = await serve({ ratePerChannel: 3, burst: 2 });
    const p = producer(server, { ratePerChannel: 50 });
    const values = Array.from({ length: 6 }, (_, i) => `burst-${i}`);
    const res = await p.send(values.map((v) => rec(v, { topic: "general" })));
    expect(okTexts(res).every((r) => r === "ok")).toBe(true);
    expect(server.calls.filter((c) => c.status === 429).length, "the server did rate limit").toBeGreaterThan(0);
    expect(server.messages.map((m) => m.text)).toEqual(values);
  });

  it("sorts ok:false errors: internal_error is retryable and holds back the channel's later records; a retry keeps the order", async () => {
    const server = await serve();
    const p = producer(server, { channel: "general" });
    server.failNext(1, "internal_error", { method: "chat.postMessage" });
    const batch = ["r0", "r1", "r2"].map((v) => rec(v));
    const res = await p.send(batch);
    expect(res.map((r) => r.ok)).toEqual([false, false, false]);
    expect(res.every((r) => !r.ok && r.retryable !== false)).toBe(true);
    expect(server.messages).toHaveLength(0);
    const again = await p.send(batch);
    expect(okTexts(again)).toEqual(["ok", "ok", "ok"]);
    expect(server.messages.map((m) => m.text)).toEqual(["r0", "r1", "r2"]);
  });

  it("a refused token fails connect with AUTH and the token appears in no error or log line", async () => {
    const server = await serve();
    const log = capture();
    const secretToken = "xoxb-not-the-right-one-123";
    const p = slackProducer({ token: secretToken, apiUrl: server.url }, { logger: log });
    producers.push(p);
    const err = await p.connect!().then(() => undefined, (e: unknown) => e);
    expect(isGeoWatchError(err, "AUTH"), String(err)).toBe(true);
    expect((err as Error).message).toMatch(/invalid_auth/);
    const res = await p.send([rec("x", { topic: "general" })]);
    expect(res[0]!.ok).toBe(false);
    if (!res[0]!.ok) expect(res[0]!.retryable, "a token problem is not the message's fault").not.toBe(false);
    expect(p.health!().ok, "health reports the sink down while the token is refused").toBe(false);
    const everything = [String(err), JSON.stringify(res.map((r) => (r.ok ? "" : r.error.message))), ...log.lines].join("\n");
    expect(everything).not.toContain(secretToken);
  });

  it("the token falls back to GEOWATCH_SLACK_TOKEN through the secret reader", async () => {
    const server = await serve();
    const p = slackProducer({ apiUrl: server.url, channel: "general" }, { secret: (ref) => (ref === "GEOWATCH_SLACK_TOKEN" ? TOKEN : undefined) });
    producers.push(p);
    await p.connect!();
    expect(okTexts(await p.send([rec("from env")]))).toEqual(["ok"]);
    const none = slackProducer({ apiUrl: server.url }, { secret: () => undefined });
    const err = await none.connect!().then(() => undefined, (e: unknown) => e);
    expect(isGeoWatchError(err, "CONFIG") && /GEOWATCH_SLACK_TOKEN/.test((err as Error).message)).toBe(true);
  });

  it("threads the messages of one track under the first one's ts (thread_by: track)", async () => {
    const server = await serve();
    const p = producer(server, { channel: "general", threadBy: "track" });
    const meta = (track: string, fence: string) => ({ metadata: { track, fence, actiontype: "enter", targettype: "geofence" } });
    await p.send([rec("a1", meta("a", "f")), rec("b1", meta("b", "f")), rec("a2", meta("a", "g"))]);
    await p.send([rec("a3", meta("a", "f")), rec("none", { metadata: {} })]);
    const [a1, b1, a2, a3, none] = server.messages;
    expect(a1!.thread_ts).toBeUndefined();
    expect(b1!.thread_ts).toBeUndefined();
    expect(a2!.thread_ts).toBe(a1!.ts);
    expect(a3!.thread_ts).toBe(a1!.ts);
    expect(none!.thread_ts, "a message without metadata.track is not threaded").toBeUndefined();
  });

  it("thread_by: fence keys threads by metadata.fence", async () => {
    const server = await serve();
    const p = producer(server, { channel: "general", threadBy: "fence" });
    await p.send([rec("x1", { metadata: { fence: "harbour", track: "1" } }), rec("x2", { metadata: { fence: "harbour", track: "2" } })]);
    expect(server.messages[1]!.thread_ts).toBe(server.messages[0]!.ts);
  });

  it("passes Block Kit blocks from a JSON payload, and wraps text in a section with blocks: true", async () => {
    const server = await serve();
    const blocks = [{ type: "header", text: { type: "plain_text", text: "Layer created" } }];
    await producer(server, { channel: "general" }).send([rec(JSON.stringify({ text: "fallback", blocks }))]);
    await producer(server, { channel: "general", blocks: true }).send([rec(JSON.stringify({ text: "*bold*" }))]);
    expect(server.messages[0]).toMatchObject({ text: "fallback", blocks });
    expect(server.messages[1]).toMatchObject({ text: "*bold*", blocks: [{ type: "section", text: { type: "mrkdwn", text: "*bold*" } }] });
  });

  it("a record sent again while its first post is still running (a send timeout) is posted once", async () => {
    const server = await serve();
    const p = producer(server, { channel: "general" });
    server.rateLimitNext(1, 1);
    const r = rec("once");
    const [first, second] = await Promise.all([p.send([r]), p.send([r])]);
    expect(first[0]!.ok && second[0]!.ok).toBe(true);
    expect(server.messages.map((m) => m.text)).toEqual(["once"]);
  });

  it("an unreachable API is a retryable CONNECT failure (the broker treats the sink as down)", async () => {
    const server = await serve();
    const url = server.url;
    await server.close();
    servers = [];
    const p = slackProducer({ token: TOKEN, apiUrl: url, channel: "general", requestTimeoutMs: 2000 });
    producers.push(p);
    const res = await p.send([rec("x")]);
    expect(res[0]!.ok).toBe(false);
    if (!res[0]!.ok) {
      expect(res[0]!.retryable).not.toBe(false);
      expect(isGeoWatchError(res[0]!.error, "CONNECT")).toBe(true);
    }
  });

  it("close is idempotent and waits for posts in flight; the runtime refuses sends after close", async () => {
    const server = await serve();
    const g = guardProducer(producer(server, { channel: "general" }), { name: "s", backend: "slack" });
    const sending = g.send([rec("before close")]);
    expect((await sending)[0]!.ok).toBe(true);
    await g.close();
    await g.close();
    await expect(g.send([rec("after")])).rejects.toThrow(/closed/);
  });
});

describe("slack through a Broker with a dead-letter sink", () => {
  async function drain(ch: MemoryChannel): Promise<InRecord[]> {
    const c = ch.consumer();
    const got = await c.receive(1000, { waitMs: 0 });
    await c.ack?.(got);
    return got;
  }

  it("an unknown channel and a template with a missing field are dead-lettered with the reason; the rest is posted", async () => {
    const server = await serve();
    const input = memoryChannel();
    const dlq = memoryChannel();
    const events = [
      { metadata: { actiontype: "create", targettype: "layer", recipient: "#general" }, data: { name: "roads" } },
      { metadata: { actiontype: "create", targettype: "layer", recipient: "#nowhere" }, data: { name: "lost" } },
      { metadata: { actiontype: "create", targettype: "layer", recipient: "#alerts" }, data: {} },
      { metadata: { actiontype: "create", targettype: "layer", recipient: "#general" }, data: { name: "rivers" } },
    ];
    await input.producer().send(events.map((e) => ({ value: JSON.stringify(e) })));
    const broker = new Broker({
      name: "notify",
      consumers: [{ name: "in", consumer: input.consumer(), codec: jsonCodec }],
      producers: [{ name: "slack", producer: producer(server), codec: templateCodec({ format: "slack", templates: { "create.layer": "Layer {{data.name}} created" } }), maxTries: 2 }],
      deadLetter: { name: "dlq", producer: dlq.producer() },
      receiveWaitMs: 100,
      sleepPeriodMs: 100,
      retryBaseMs: 10,
    });
    await broker.run({ untilIdle: true });
    expect(server.messagesIn("general").map((m) => m.text)).toEqual(["Layer roads created", "Layer rivers created"]);
    const dead = (await drain(dlq)).map((r) => JSON.parse(String(r.value)) as { reason: string });
    expect(dead).toHaveLength(2);
    const reasons = dead.map((d) => d.reason).sort();
    expect(reasons.some((r) => /channel_not_found/.test(r))).toBe(true);
    expect(reasons.some((r) => /data\.name/.test(r))).toBe(true);
    expect(input.size + input.inFlight, "every source record was acknowledged").toBe(0);
  });

  it("a Slack outage (HTTP 503, internal_error) longer than max_tries is waited out: nothing dead-lettered, order kept", async () => {
    const server = await serve();
    const input = memoryChannel();
    const dlq = memoryChannel();
    server.failNext(4, "", { status: 503 });
    server.failNext(3, "internal_error");
    await input.producer().send(["o1", "o2", "o3"].map((value) => ({ value })));
    const broker = new Broker({
      name: "outage",
      consumers: [{ name: "in", consumer: input.consumer() }],
      producers: [{ name: "slack", producer: producer(server, { channel: "general" }), maxTries: 2 }],
      deadLetter: { name: "dlq", producer: dlq.producer() },
      receiveWaitMs: 100,
      sleepPeriodMs: 100,
      retryBaseMs: 10,
      retryMaxMs: 50,
    });
    await broker.run({ untilIdle: true });
    expect(server.calls.filter((c) => c.result !== "ok").length, "the outage happened").toBe(7);
    expect(server.messages.map((m) => m.text)).toEqual(["o1", "o2", "o3"]);
    expect(dlq.size, "nothing dead-lettered for an outage").toBe(0);
    expect(input.size + input.inFlight).toBe(0);
  });

  it("validates through the backend definition: token is secret, unknown options listed", () => {
    const role = slackBackend.producer!;
    const ok = role.parse({ channel: "#alerts", rate_per_channel: 2, thread_by: "track" }, { role: "producer" });
    expect(ok.ok).toBe(true);
    const bad = role.parse({ channel: "", thread_by: "user", colour: "red" }, { role: "producer" });
    expect(bad.ok).toBe(false);
    if (!bad.ok) expect(bad.problems.map((p) => p.path).sort()).toEqual(["channel", "colour", "thread_by"]);
    const token = role.docs().find((d) => d.name === "token");
    expect(token?.env).toBe("GEOWATCH_SLACK_TOKEN");
  });
});
