// The test servers: kinesalite (`.ci/servers/kinesalite.sh start`) and, for leases, moto's DynamoDB (`.ci/servers/moto.sh start`).
import { CreateStreamCommand, DeleteStreamCommand, DescribeStreamSummaryCommand, KinesisClient, ListShardsCommand, PutRecordsCommand, SplitShardCommand } from "@aws-sdk/client-kinesis";
import { createServer, connect as tcpConnect, type Server, type Socket } from "node:net";
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

/** Shards each worker holds in a lease table, read straight from DynamoDB. */
export async function leasesByOwner(table: string): Promise<Map<string, string[]>> {
  const { DynamoDBClient, ScanCommand } = await import("@aws-sdk/client-dynamodb");
  const db = new DynamoDBClient({ endpoint: dynamoEndpoint(), region: "us-east-1", requestHandler: new NodeHttpHandler() });
  try {
    const out = new Map<string, string[]>();
    const r = await db.send(new ScanCommand({ TableName: table, ConsistentRead: true }));
    for (const item of r.Items ?? []) {
      const owner = item.leaseOwner?.S;
      if (owner && !item.finished?.BOOL) out.set(owner, [...(out.get(owner) ?? []), item.shardId!.S!].sort());
    }
    return out;
  } catch (err) {
    if ((err as { name?: string }).name === "ResourceNotFoundException") return new Map();
    throw err;
  } finally {
    db.destroy();
  }
}

/** Splits a shard at the middle of its hash key range; resolves once the two children are listed. */
export async function splitShard(stream: string, shardId: string): Promise<string[]> {
  const c = rawClient();
  try {
    const shards = (await c.send(new ListShardsCommand({ StreamName: stream }))).Shards ?? [];
    const s = shards.find((x) => x.ShardId === shardId);
    if (!s) throw new Error(`no shard ${shardId}`);
    const lo = BigInt(s.HashKeyRange!.StartingHashKey!);
    const hi = BigInt(s.HashKeyRange!.EndingHashKey!);
    await c.send(new SplitShardCommand({ StreamName: stream, ShardToSplit: shardId, NewStartingHashKey: ((lo + hi) / 2n).toString() }));
    for (let i = 0; i < 100; i++) {
      const now = (await c.send(new ListShardsCommand({ StreamName: stream }))).Shards ?? [];
      const children = now.filter((x) => x.ParentShardId === shardId).map((x) => x.ShardId!);
      if (children.length === 2) return children;
      await new Promise((r) => setTimeout(r, 100));
    }
    throw new Error(`split of ${shardId} did not show its children`);
  } finally {
    c.destroy();
  }
}

/** A TCP proxy to 127.0.0.1:port that can drop every connection and refuse new ones, then come back. */
export async function tcpProxy(port: number): Promise<{ port: number; cut(): Promise<void>; restore(): Promise<void> }> {
  let server: Server | undefined;
  const sockets = new Set<Socket>();
  const listen = (at: number) =>
    new Promise<number>((resolve) => {
      server = createServer((client) => {
        const upstream = tcpConnect(port, "127.0.0.1");
        sockets.add(client).add(upstream);
        client.pipe(upstream).pipe(client);
        const end = () => {
          client.destroy();
          upstream.destroy();
          sockets.delete(client);
          sockets.delete(upstream);
        };
        client.on("error", end).on("close", end);
        upstream.on("error", end).on("close", end);
      }).listen(at, "127.0.0.1", () => resolve((server!.address() as { port: number }).port));
    });
  const own = await listen(0);
  return {
    port: own,
    cut: () =>
      new Promise<void>((resolve) => {
        for (const s of sockets) s.destroy();
        sockets.clear();
        if (!server?.listening) return resolve();
        server.close(() => resolve());
      }),
    restore: async () => {
      await listen(own);
    },
  };
}
