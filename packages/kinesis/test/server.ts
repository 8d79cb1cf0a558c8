// The test servers: kinesalite (`.ci/servers/kinesalite.sh start`) and, for leases, moto's DynamoDB (`.ci/servers/moto.sh start`).
import { CreateStreamCommand, DeleteStreamCommand, DescribeStreamSummaryCommand, KinesisClient, PutRecordsCommand } from "@aws-sdk/client-kinesis";
import { requireEnv } from "@geowatch/testkit";
import { NodeHttpHandler } from "@smithy/node-http-handler";

// Both servers accept any credentials; the SDK's chain still needs some.
process.env.AWS_ACCESS_KEY_ID ??= "test";
process.env.AWS_SECRET_ACCESS_KEY ??= "test";
process.env.AWS_REGION ??= "us-east-1";

export const kinesisEndpoint = () =>
  requireEnv("GEOWATCH_KINESIS_ENDPOINT", "Start kinesalite: `bash .ci/servers/kinesalite.sh start && source .servers/env/kinesalite.env` (from the repo root).");
export const dynamoEndpoint = () =>
  requireEnv("GEOWATCH_MOTO_ENDPOINT", "Start moto (DynamoDB for the lease table): `bash .ci/servers/moto.sh start && source .servers/env/moto.env` (from the repo root).");

/** A raw SDK client for setup and inspection (the package under test is not used for this). */
export function rawClient(): KinesisClient {
  return new KinesisClient({ endpoint: kinesisEndpoint(), region: "us-east-1", requestHandler: new NodeHttpHandler() });
}

export const fresh = (tag: string) => `gw-test-${tag}-${Date.now().toString(36)}-${Math.random().toString(36).slice(2, 8)}`;

export async function createStream(name: string, shards: number): Promise<void> {
  const c = rawClient();
  try {
    await c.send(new CreateStreamCommand({ StreamName: name, ShardCount: shards }));
    for (let i = 0; i < 100; i++) {
      const d = await c.send(new DescribeStreamSummaryCommand({ StreamName: name }));
      if (d.StreamDescriptionSummary?.StreamStatus === "ACTIVE") return;
      await new Promise((r) => setTimeout(r, 100));
    }
    throw new Error(`stream ${name} not ACTIVE`);
  } finally {
    c.destroy();
  }
}

export async function deleteStream(name: string): Promise<void> {
  const c = rawClient();
  await c.send(new DeleteStreamCommand({ StreamName: name })).catch(() => undefined);
  c.destroy();
}

/** Puts `values` with their keys through the raw SDK, in order, one call per 500. */
export async function putRaw(stream: string, records: Array<{ value: string; key: string }>): Promise<void> {
  const c = rawClient();
  try {
    for (let i = 0; i < records.length; i += 500) {
      const chunk = records.slice(i, i + 500);
      const r = await c.send(new PutRecordsCommand({ StreamName: stream, Records: chunk.map((x) => ({ Data: Buffer.from(x.value), PartitionKey: x.key })) }));
      if (r.FailedRecordCount) throw new Error(`${r.FailedRecordCount} records failed`);
    }
  } finally {
    c.destroy();
  }
}
