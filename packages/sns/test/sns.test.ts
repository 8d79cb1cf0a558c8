import { CreateQueueCommand, DeleteQueueCommand, GetQueueAttributesCommand, ReceiveMessageCommand, SQSClient } from "@aws-sdk/client-sqs";
import { SNSClient, SubscribeCommand } from "@aws-sdk/client-sns";
import { templateCodec } from "@geowatch/core";
import type { InRecord, OutRecord } from "@geowatch/core";
import { sqsConsumer } from "@geowatch/sqs";
import { startTcpProxy } from "@geowatch/testkit";
import { describe, expect, it } from "vitest";
import { snsProducer } from "../src/index.js";
import { endpoint, freshName, region, topicWithQueue } from "./server.js";

const text = (v: InRecord["value"]) => (typeof v === "string" ? v : Buffer.from(v).toString("utf8"));

async function drain(queue: string, n: number, timeoutMs = 10_000): Promise<InRecord[]> {
  const c = sqsConsumer({ endpoint: endpoint(), region: region(), queue, waitTimeSeconds: 1 });
  const got: InRecord[] = [];
  try {
    const deadline = Date.now() + timeoutMs;
    while (got.length < n && Date.now() < deadline) {
      const batch = await c.receive(n - got.length, { waitMs: 500 });
      got.push(...batch);
      await c.ack(batch);
    }
    // Nothing more than expected arrives.
    got.push(...(await c.receive(100, { waitMs: 1000 })));
    return got;
  } finally {
    await c.close();
  }
}

const envelope = (actiontype: string, i: number) => ({ metadata: { actiontype, targettype: "geofence", track: `t${i}` }, data: { i } });

describe("sns -> sqs end to end", () => {
  it("a subscription filter policy selects by actiontype from the metadata attributes; the GeoWatch SQS consumer reads key, headers and body", async () => {
    const t = await topicWithQueue({ filterPolicy: { actiontype: ["enter"] } });
    const p = snsProducer({ endpoint: endpoint(), region: region(), topic: t.topicArn });
    try {
      const records: OutRecord[] = Array.from({ length: 12 }, (_, i) => {
        const v = envelope(i % 3 === 0 ? "enter" : "exit", i);
        return { value: JSON.stringify(v), key: `k${i}`, headers: { "x-source": "test" }, metadata: v.metadata };
      });
      const res = await p.send(records);
      expect(res.every((r) => r.ok), JSON.stringify(res)).toBe(true);
      expect(res.every((r) => r.ok && typeof r.id === "string")).toBe(true);
      const got = await drain(t.queue, 4);
      expect(got.map((r) => r.key).sort()).toEqual(["k0", "k3", "k6", "k9"]);
      for (const r of got) {
        expect(JSON.parse(text(r.value)).metadata.actiontype).toBe("enter");
        expect(r.headers).toMatchObject({ actiontype: "enter", targettype: "geofence", "x-source": "test" });
      }
    } finally {
      await p.close();
      await t.teardown();
    }
  });

  it("subject and body come from the template codec (format: email); the subject is made SNS-safe", async () => {
    const t = await topicWithQueue();
    const sqs = new SQSClient({ endpoint: endpoint(), region: region() });
    const sns = new SNSClient({ endpoint: endpoint(), region: region() });
    // A second subscription without raw delivery shows what SNS made of the record: Subject, Message, attributes.
    const { QueueUrl } = await sqs.send(new CreateQueueCommand({ QueueName: freshName("envelope") }));
    const arn = (await sqs.send(new GetQueueAttributesCommand({ QueueUrl, AttributeNames: ["QueueArn"] }))).Attributes!.QueueArn!;
    await sns.send(new SubscribeCommand({ TopicArn: t.topicArn, Protocol: "sqs", Endpoint: arn }));
    const codec = templateCodec({ format: "email", templates: { "enter.geofence": "Subject: {{metadata.track}} entered Côte d'Ivoire\n\n{{metadata.track}} is in, i={{data.i}}" } });
    const p = snsProducer({ endpoint: endpoint(), region: region(), topic: t.topic, subject: "template" });
    try {
      const v = envelope("enter", 7);
      const res = await p.send([{ value: codec.encode(v), metadata: v.metadata }, { value: "not the email format" }]);
      expect(res[0]!.ok, JSON.stringify(res[0])).toBe(true);
      expect(res[1]!.ok).toBe(false);
      expect(!res[1]!.ok && res[1]!.retryable).toBe(false);
      expect(!res[1]!.ok && res[1]!.error.message).toMatch(/template codec's email output/);
      const out = await sqs.send(new ReceiveMessageCommand({ QueueUrl, WaitTimeSeconds: 5, MaxNumberOfMessages: 10 }));
      expect(out.Messages?.length).toBe(1);
      const n = JSON.parse(out.Messages![0]!.Body!) as { Subject: string; Message: string; MessageAttributes: Record<string, { Value: string }> };
      expect(n.Subject).toBe("t7 entered Cote d'Ivoire");
      expect(n.Message).toBe("t7 is in, i=7");
      expect(n.MessageAttributes.actiontype!.Value).toBe("enter");
      const raw = await drain(t.queue, 1);
      expect(raw.map((r) => text(r.value))).toEqual(["t7 is in, i=7"]);
    } finally {
      await p.close();
      await sqs.send(new DeleteQueueCommand({ QueueUrl })).catch(() => undefined);
      sqs.destroy();
      sns.destroy();
      await t.teardown();
    }
  });

  it("FIFO topic: the key is the message group, order is kept per group", async () => {
    const t = await topicWithQueue({ fifo: true });
    const p = snsProducer({ endpoint: endpoint(), region: region(), topic: t.topic });
    try {
      const records: OutRecord[] = Array.from({ length: 30 }, (_, i) => ({ value: `m-${i}`, key: `g${i % 3}` }));
      const res = await p.send(records);
      expect(res.every((r) => r.ok), JSON.stringify(res.filter((r) => !r.ok))).toBe(true);
      const got = await drain(t.queue, 30, 20_000);
      expect(got.length).toBe(30);
      for (const g of ["g0", "g1", "g2"]) {
        const seq = got.filter((r) => r.key === g).map((r) => Number(text(r.value).slice(2)));
        expect(seq.length).toBe(10);
        expect(seq, `order within group ${g}`).toEqual([...seq].sort((a, b) => a - b));
      }
    } finally {
      await p.close();
      await t.teardown();
    }
  }, 40_000);

  it("records SNS cannot take fail alone and are not retryable: too many attributes, bad attribute names", async () => {
    const t = await topicWithQueue();
    const p = snsProducer({ endpoint: endpoint(), region: region(), topic: t.topic });
    try {
      const many = Object.fromEntries(Array.from({ length: 11 }, (_, i) => [`h${i}`, "v"]));
      const res = await p.send([{ value: "ok-1" }, { value: "x", headers: many }, { value: "y", headers: { "bad name": "v" } }, { value: "ok-2" }]);
      expect(res.map((r) => r.ok)).toEqual([true, false, false, true]);
      expect(!res[1]!.ok && res[1]!.error.message).toMatch(/at most 10/);
      expect(!res[2]!.ok && res[2]!.error.message).toMatch(/not a valid message attribute name/);
      expect((await drain(t.queue, 2)).map((r) => text(r.value)).sort()).toEqual(["ok-1", "ok-2"]);
    } finally {
      await p.close();
      await t.teardown();
    }
  });

  it("health() is not ok while the endpoint is unreachable and ok again after a publish succeeds", async () => {
    const t = await topicWithQueue();
    const target = new URL(endpoint());
    const proxy = await startTcpProxy({ targetHost: target.hostname, targetPort: Number(target.port) });
    const p = snsProducer({ endpoint: `http://${proxy.address}`, region: region(), topic: t.topicArn, maxAttempts: 1, requestTimeoutMs: 1000 });
    try {
      expect((await p.send([{ value: "before" }]))[0]!.ok).toBe(true);
      expect(p.health().ok).toBe(true);
      proxy.cut();
      await expect(p.send([{ value: "during" }])).rejects.toThrow(/publishing 1 message/);
      expect(p.health().ok).toBe(false);
      expect(p.health().error).toMatch(/unreachable/);
      proxy.restore();
      expect((await p.send([{ value: "after" }]))[0]!.ok).toBe(true);
      expect(p.health().ok).toBe(true);
      expect((await drain(t.queue, 2)).map((r) => text(r.value)).sort()).toEqual(["after", "before"]);
    } finally {
      await p.close();
      await proxy.close();
      await t.teardown();
    }
  });
});
