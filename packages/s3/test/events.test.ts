// The S3 event notification -> SQS pattern against moto: the bucket notifies a real SQS queue, the
// notifications are received with the SQS API and go through the s3_fetch stage.
import { afterAll, describe, expect, it } from "vitest";
import { PutBucketNotificationConfigurationCommand } from "@aws-sdk/client-s3";
import { CreateQueueCommand, DeleteMessageCommand, DeleteQueueCommand, GetQueueAttributesCommand, ReceiveMessageCommand, SQSClient } from "@aws-sdk/client-sqs";
import type { Message } from "@geowatch/core";
import { s3EventObjects, s3Fetch, s3FetchStage, s3Store } from "../src/index.js";
import { bucket, endpoint, fresh, rawClient } from "./server.js";

const sqs = new SQSClient({ endpoint: endpoint(), region: process.env.AWS_REGION ?? "us-east-1" });
const cleanup: Array<() => Promise<unknown>> = [];
afterAll(async () => {
  for (const c of cleanup) await c().catch(() => undefined);
  sqs.destroy();
});

/** A bucket whose ObjectCreated events go to a new SQS queue. */
async function notifying(): Promise<{ name: string; queueUrl: string }> {
  const b = await bucket("events");
  cleanup.push(b.drop);
  const { QueueUrl } = await sqs.send(new CreateQueueCommand({ QueueName: fresh("s3events") }));
  cleanup.push(() => sqs.send(new DeleteQueueCommand({ QueueUrl })));
  const { Attributes } = await sqs.send(new GetQueueAttributesCommand({ QueueUrl, AttributeNames: ["QueueArn"] }));
  await rawClient().send(
    new PutBucketNotificationConfigurationCommand({
      Bucket: b.name,
      NotificationConfiguration: { QueueConfigurations: [{ QueueArn: Attributes!.QueueArn!, Events: ["s3:ObjectCreated:*"] }] },
    }),
  );
  return { name: b.name, queueUrl: QueueUrl! };
}

/** Receives (and deletes) SQS messages until `want` S3 objects are named or time is up. */
async function notifications(queueUrl: string, want: number): Promise<Message[]> {
  const out: Message[] = [];
  let named = 0;
  const deadline = Date.now() + 15_000;
  while (named < want && Date.now() < deadline) {
    const res = await sqs.send(new ReceiveMessageCommand({ QueueUrl: queueUrl, MaxNumberOfMessages: 10, WaitTimeSeconds: 1 }));
    for (const m of res.Messages ?? []) {
      const value = JSON.parse(m.Body!) as unknown;
      named += s3EventObjects(value)?.length ?? 0;
      out.push({ value, source: "sqs" });
      await sqs.send(new DeleteMessageCommand({ QueueUrl: queueUrl, ReceiptHandle: m.ReceiptHandle! }));
    }
  }
  return out;
}

describe("s3 event notifications -> SQS -> s3_fetch", () => {
  it("moto delivers ObjectCreated events to SQS; the stage turns them into the objects' lines", async () => {
    const b = await notifying();
    const store = s3Store({ bucket: b.name, endpoint: endpoint(), partKey: "{key}/{seq}.ndjson" });
    cleanup.push(() => store.close());
    await store.write({ key: "tracks/a b", body: '{"id":1}\n{"id":2}\n', contentType: "application/x-ndjson", append: true });
    await store.write({ key: "tracks/a b", body: '{"id":3}\n', contentType: "application/x-ndjson", append: true });
    const events = await notifications(b.queueUrl, 2);
    const objects = events.flatMap((e) => s3EventObjects(e.value) ?? []);
    expect(objects).toHaveLength(2);
    expect(objects[0]!.key).toMatch(/^tracks\/a b\/\d{14}-\d{6}-[0-9a-f]{8}\.ndjson$/);
    const stage = s3Fetch({ endpoint: endpoint(), split: "lines", codec: "json" });
    cleanup.push(async () => stage.close?.());
    const out = await stage.process(events);
    expect(out.dead ?? []).toEqual([]);
    expect(out.pass.map((m) => (m.value as { id: number }).id).sort()).toEqual([1, 2, 3]);
    expect(out.pass[0]!.headers?.["s3-bucket"]).toBe(b.name);
  });

  it("dead-letters what is not an event or names another bucket; drops test events and deleted objects", async () => {
    const stage = s3Fetch({ endpoint: endpoint(), bucket: "only-this", split: "object" });
    cleanup.push(async () => stage.close?.());
    const other = { Records: [{ eventName: "ObjectCreated:Put", s3: { bucket: { name: "elsewhere" }, object: { key: "k" } } }] };
    const out = await stage.process([{ value: { hello: 1 } }, { value: other }, { value: { Event: "s3:TestEvent" } }]);
    expect(out.pass).toEqual([]);
    expect(out.dead?.map((d) => d.reason)).toEqual([expect.stringMatching(/not an S3 event/), expect.stringMatching(/bucket "elsewhere"/)]);
    const b = await bucket("gone");
    cleanup.push(b.drop);
    const fetcher = s3Fetch({ endpoint: endpoint() });
    cleanup.push(async () => fetcher.close?.());
    const gone = await fetcher.process([{ value: { Records: [{ eventName: "ObjectCreated:Put", s3: { bucket: { name: b.name }, object: { key: "deleted" } } }] } }]);
    expect(gone).toEqual({ pass: [], dead: [] });
  });

  it("is a stage the config can name (s3_fetch) with validated options", () => {
    expect(s3FetchStage.name).toBe("s3_fetch");
    expect(s3FetchStage.parse({ split: "unpack", codec: "geojson", endpoint: "http://127.0.0.1:1" }).ok).toBe(true);
    const bad = s3FetchStage.parse({ split: "words" });
    expect(bad.ok).toBe(false);
    expect(JSON.stringify(s3FetchStage.parse({ codec: "nope" }))).toMatch(/unknown codec/);
  });
});
