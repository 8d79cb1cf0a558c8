import { mkdtempSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { ListShardsCommand, PutRecordCommand, SplitShardCommand } from "@aws-sdk/client-kinesis";
import { DynamoDBClient, ScanCommand } from "@aws-sdk/client-dynamodb";
import type { Consumer, InRecord } from "@geowatch/core";
import { NodeHttpHandler } from "@smithy/node-http-handler";
import { afterAll, describe, expect, it } from "vitest";
import { kinesisBackend, kinesisConsumer, kinesisProducer } from "../src/index.js";
import { createStream, deleteStream, dynamoEndpoint, fresh, kinesisEndpoint, putRaw, rawClient, tcpProxy } from "./server.js";

const streams: string[] = [];
afterAll(async () => {
  await Promise.all(streams.map((s) => deleteStream(s)));
});

async function newStream(tag: string, shards: number): Promise<string> {
  const s = fresh(tag);
  streams.push(s);
  await createStream(s, shards);
  return s;
}

const tmp = () => join(mkdtempSync(join(tmpdir(), "gw-kinesis-")), "checkpoints.db");
const text = (r: InRecord) => (typeof r.value === "string" ? r.value : Buffer.from(r.value).toString("utf8"));
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

async function receiveUntil(c: Consumer, n: number, ms: number): Promise<InRecord[]> {
  const got: InRecord[] = [];
  const deadline = Date.now() + ms;
  while (got.length < n && Date.now() < deadline) got.push(...(await c.receive(1000, { waitMs: 500 })));
  return got;
}

/** Commits each stream's last position, as the broker does after acknowledgement. */
async function commitAll(c: Consumer, records: InRecord[]): Promise<void> {
  const last = new Map<string, NonNullable<InRecord["position"]>>();
  for (const r of records) last.set(r.position!.stream, r.position!);
  await c.commit!([...last.values()]);
}

describe("kinesis producer", () => {
  it("chunks a large send within 500 records and 5 MiB per call, with a sequence number per record", async () => {
    const stream = await newStream("chunks", 2);
    const p = kinesisProducer({ stream, endpoint: kinesisEndpoint() });
    try {
      const small = Array.from({ length: 1203 }, (_, i) => ({ value: `small-${i}`, key: `k${i % 7}` }));
      const big = Array.from({ length: 7 }, (_, i) => ({ value: `${i}`.padEnd(900 * 1024, "x"), key: "big" }));
      const res = await p.send([...small, ...big]);
      expect(res.length).toBe(small.length + big.length);
      expect(res.filter((r) => !r.ok)).toEqual([]);
      const ids = res.map((r) => (r.ok ? r.id : ""));
      for (const id of ids) expect(id).toMatch(/^shardId-\d+\/\d{20,}$/);
      expect(new Set(ids).size, "one distinct sequence number per record").toBe(ids.length);
    } finally {
      await p.close!();
    }
  });

  it("parallel PutRecords lanes keep the order of each partition key", async () => {
    const stream = await newStream("lanes", 4);
    const p = kinesisProducer({ stream, endpoint: kinesisEndpoint(), parallelCalls: 4 });
    const c = kinesisConsumer({ stream, endpoint: kinesisEndpoint(), shardIteratorType: "TRIM_HORIZON", checkpointPath: tmp(), idleTimeBetweenReadsMs: 200 });
    try {
      const sent = Array.from({ length: 2000 }, (_, i) => ({ value: `${i % 25}:${Math.floor(i / 25)}`, key: `key-${i % 25}` }));
      const res = await p.send(sent);
      expect(res.filter((r) => !r.ok)).toEqual([]);
      const got = await receiveUntil(c, sent.length, 20_000);
      expect(got.length).toBe(sent.length);
      const perKey = new Map<string, number[]>();
      for (const r of got) perKey.set(r.key!, [...(perKey.get(r.key!) ?? []), Number(text(r).split(":")[1])]);
      expect(perKey.size).toBe(25);
      for (const [key, ns] of perKey) expect(ns, `order of ${key}`).toEqual(Array.from({ length: 80 }, (_, i) => i));
    } finally {
      await Promise.all([p.close!(), c.close!()]);
    }
  });

  it("a partition key template reads envelope metadata; a record over 1 MiB fails alone and is not retryable", async () => {
    const stream = await newStream("pkey", 1);
    const p = kinesisProducer({ stream, endpoint: kinesisEndpoint(), partitionKey: "{actiontype}-{featuretype}" });
    const c = kinesisConsumer({ stream, endpoint: kinesisEndpoint(), shardIteratorType: "TRIM_HORIZON", checkpointPath: tmp(), idleTimeBetweenReadsMs: 200 });
    try {
      const res = await p.send([
        { value: "a", metadata: { actiontype: "create", featuretype: "road" } },
        { value: "x".repeat(1024 * 1024), metadata: { actiontype: "create" } },
        { value: "b", metadata: { actiontype: "delete", featuretype: "river" } },
      ]);
      expect(res.map((r) => r.ok)).toEqual([true, false, true]);
      expect(res[1]!.ok === false && res[1]!.retryable).toBe(false);
      const got = await receiveUntil(c, 2, 10_000);
      expect(got.map((r) => [text(r), r.key])).toEqual([
        ["a", "create-road"],
        ["b", "delete-river"],
      ]);
    } finally {
      await Promise.all([p.close!(), c.close!()]);
    }
  });
});

describe("kinesis consumer", () => {
  it("start positions: LATEST skips what was there, AT_TIMESTAMP, AT_/AFTER_SEQUENCE_NUMBER on a pinned shard", async () => {
    const stream = await newStream("start", 1);
    const endpoint = kinesisEndpoint();
    await putRaw(stream, [{ value: "old-0", key: "a" }, { value: "old-1", key: "a" }]);
    await sleep(1100);
    const t = Date.now();
    await putRaw(stream, [{ value: "mid-0", key: "a" }, { value: "mid-1", key: "a" }]);

    const latest = kinesisConsumer({ stream, endpoint, checkpointPath: tmp(), idleTimeBetweenReadsMs: 200 });
    try {
      await latest.connect!();
      await putRaw(stream, [{ value: "new-0", key: "a" }]);
      expect((await receiveUntil(latest, 1, 10_000)).map(text)).toEqual(["new-0"]);
    } finally {
      await latest.close!();
    }

    const at = kinesisConsumer({ stream, endpoint, checkpointPath: tmp(), shardIteratorType: "AT_TIMESTAMP", startTimestamp: new Date(t - 200).toISOString() });
    let seqs: string[] = [];
    try {
      const got = await receiveUntil(at, 3, 10_000);
      expect(got.map(text)).toEqual(["mid-0", "mid-1", "new-0"]);
      seqs = got.map((r) => String(r.position!.offset));
    } finally {
      await at.close!();
    }
    const shardId = "shardId-000000000000";
    for (const [type, want] of [
      ["AT_SEQUENCE_NUMBER", ["mid-1", "new-0"]],
      ["AFTER_SEQUENCE_NUMBER", ["new-0"]],
    ] as const) {
      const c = kinesisConsumer({ stream, endpoint, checkpointPath: tmp(), shardIteratorType: type, startSequenceNumber: seqs[1]!, shardId });
      try {
        expect((await receiveUntil(c, want.length, 10_000)).map(text), type).toEqual(want);
      } finally {
        await c.close!();
      }
    }
  });

  it("checkpoints only on commit: a restart resumes after the last committed record of each shard", async () => {
    const stream = await newStream("resume", 2);
    const endpoint = kinesisEndpoint();
    const checkpointPath = tmp();
    const sent = Array.from({ length: 40 }, (_, i) => ({ value: `r-${i}`, key: `k${i % 5}` }));
    await putRaw(stream, sent);
    const opts = { stream, endpoint, checkpointPath, shardIteratorType: "TRIM_HORIZON" as const, idleTimeBetweenReadsMs: 200 };
    const a = kinesisConsumer(opts);
    const got = await receiveUntil(a, 40, 10_000);
    expect(got.length).toBe(40);
    // Commit only the first half of each shard's records.
    const byShard = new Map<string, InRecord[]>();
    for (const r of got) byShard.set(r.position!.stream, [...(byShard.get(r.position!.stream) ?? []), r]);
    const committed = [...byShard.values()].flatMap((rs) => rs.slice(0, Math.ceil(rs.length / 2)));
    await commitAll(a, committed);
    await a.close!();
    const b = kinesisConsumer(opts);
    try {
      const again = await receiveUntil(b, 40 - committed.length, 10_000);
      await sleep(500);
      again.push(...(await b.receive(1000, { waitMs: 200 })));
      expect(again.map(text).sort()).toEqual(got.filter((r) => !committed.includes(r)).map(text).sort());
    } finally {
      await b.close!();
    }
  });

  it("resharding: a child shard starts only after its parent is read to its end and checkpointed; order per key holds; caughtUp follows", async () => {
    const stream = await newStream("split", 1);
    const endpoint = kinesisEndpoint();
    const before = Array.from({ length: 30 }, (_, i) => ({ value: `before-${i}`, key: `k${i % 6}` }));
    await putRaw(stream, before);
    const c = kinesisConsumer({ stream, endpoint, checkpointPath: tmp(), shardIteratorType: "TRIM_HORIZON", idleTimeBetweenReadsMs: 200, shardSyncMs: 500 });
    const raw = rawClient();
    try {
      const first = await receiveUntil(c, 30, 10_000);
      expect(first.map(text)).toEqual(before.map((b) => b.value));
      expect(await c.caughtUp!()).toBe(true);
      await raw.send(new SplitShardCommand({ StreamName: stream, ShardToSplit: "shardId-000000000000", NewStartingHashKey: (2n ** 127n).toString() }));
      for (let i = 0; i < 50; i++) {
        const shards = (await raw.send(new ListShardsCommand({ StreamName: stream }))).Shards ?? [];
        if (shards.length === 3) break;
        await sleep(100);
      }
      const after = Array.from({ length: 30 }, (_, i) => ({ value: `after-${i}`, key: `k${i % 6}` }));
      await putRaw(stream, after);
      // Nothing from the children while the parent's records are not checkpointed.
      const early = await receiveUntil(c, 1, 2500);
      expect(early.map(text), "no child record before the parent is finished").toEqual([]);
      expect(await c.caughtUp!(), "not caught up while a closed shard waits for its last checkpoint").toBe(false);
      await commitAll(c, first);
      const second = await receiveUntil(c, 30, 15_000);
      expect(second.map(text).sort()).toEqual(after.map((a) => a.value).sort());
      expect(new Set(second.map((r) => r.position!.stream)).size, "the records come from the two children").toBe(2);
      for (const key of new Set(after.map((a) => a.key))) {
        const want = [...before, ...after].filter((x) => x.key === key).map((x) => x.value);
        const seen = [...first, ...second].filter((r) => r.key === key).map(text);
        expect(seen, `order of key ${key}`).toEqual(want);
      }
      await commitAll(c, second);
      let caught = false;
      for (let i = 0; i < 30 && !caught; i++) {
        caught = await c.caughtUp!();
        if (!caught) await sleep(200);
      }
      expect(caught, "caught up once the children are read and nothing is buffered").toBe(true);
      await raw.send(new PutRecordCommand({ StreamName: stream, Data: Buffer.from("late"), PartitionKey: "z" }));
      expect((await receiveUntil(c, 1, 10_000)).map(text)).toEqual(["late"]);
    } finally {
      raw.destroy();
      await c.close!();
    }
  });

  it("health() reports a lost endpoint and recovers when it is back; nothing read is lost", async () => {
    const stream = await newStream("health", 1);
    const target = new URL(kinesisEndpoint());
    const proxy = await tcpProxy(Number(target.port));
    const c = kinesisConsumer({ stream, endpoint: `http://127.0.0.1:${proxy.port}`, checkpointPath: tmp(), shardIteratorType: "TRIM_HORIZON", idleTimeBetweenReadsMs: 200 });
    try {
      await putRaw(stream, [{ value: "one", key: "a" }]);
      expect((await receiveUntil(c, 1, 10_000)).map(text)).toEqual(["one"]);
      expect(c.health!().ok).toBe(true);
      await proxy.cut();
      let down = false;
      for (let i = 0; i < 100 && !down; i++) {
        down = !c.health!().ok;
        if (!down) await sleep(100);
      }
      expect(down, "health is not ok while the endpoint is unreachable").toBe(true);
      expect(c.health!().error).toMatch(/GetRecords|ECONNREFUSED|connect/i);
      await putRaw(stream, [{ value: "two", key: "a" }]);
      await proxy.restore();
      expect((await receiveUntil(c, 1, 20_000)).map(text)).toEqual(["two"]);
      expect(c.health!().ok).toBe(true);
    } finally {
      await c.close!();
      await proxy.cut();
    }
  });
});

describe("kinesis DynamoDB leases", () => {
  it("two consumers split 4 shards 2/2; when one closes, the other takes its shards and resumes from its checkpoints", async () => {
    const stream = await newStream("lease", 4);
    const endpoint = kinesisEndpoint();
    const leaseTable = fresh("leases");
    const opts = {
      stream, endpoint, leaseTable, dynamodbEndpoint: dynamoEndpoint(), shardIteratorType: "TRIM_HORIZON" as const,
      idleTimeBetweenReadsMs: 200, shardSyncMs: 500, leaseDurationMs: 2000,
    };
    const a = kinesisConsumer({ ...opts, workerId: "a" });
    const b = kinesisConsumer({ ...opts, workerId: "b" });
    const sent = Array.from({ length: 200 }, (_, i) => ({ value: `v-${i}`, key: `key-${i}` }));
    await putRaw(stream, sent);
    const fromA: InRecord[] = [];
    const fromB: InRecord[] = [];
    try {
      await a.connect!();
      await b.connect!();
      const deadline = Date.now() + 20_000;
      const shardsOf = (rs: InRecord[]) => new Set(rs.map((r) => r.position!.stream));
      while (Date.now() < deadline && fromA.length + fromB.length < sent.length) {
        fromA.push(...(await a.receive(1000, { waitMs: 200 })));
        fromB.push(...(await b.receive(1000, { waitMs: 200 })));
      }
      // Leases may move while the split settles, so a shard can be read by both (at-least-once): count distinct values.
      expect(new Set([...fromA, ...fromB].map(text)).size).toBe(sent.length);
      await commitAll(a, fromA);
      await commitAll(b, fromB);
      // Balanced: each holds 2 of the 4 shards once the split settled.
      let balanced = false;
      for (let i = 0; i < 50 && !balanced; i++) {
        const ra = await a.receive(10, { waitMs: 100 });
        const rb = await b.receive(10, { waitMs: 100 });
        expect([...ra, ...rb].length).toBe(0);
        balanced = (await leaseCount(leaseTable, "a")) === 2 && (await leaseCount(leaseTable, "b")) === 2;
        if (!balanced) await sleep(200);
      }
      expect(balanced, "2 shards each").toBe(true);
      expect(shardsOf([...fromA, ...fromB]).size).toBe(4);
      await a.close!();
      const more = Array.from({ length: 100 }, (_, i) => ({ value: `w-${i}`, key: `key-${i}` }));
      await putRaw(stream, more);
      const rest = await receiveUntil(b, more.length, 20_000);
      expect(rest.map(text).sort(), "b reads a's shards from a's checkpoints: only the new records").toEqual(more.map((m) => m.value).sort());
      expect(await leaseCount(leaseTable, "b")).toBe(4);
    } finally {
      await Promise.all([a.close!(), b.close!()]);
    }
  });
});

/** Leases a worker holds, read straight from the lease table. */
async function leaseCount(table: string, workerId: string): Promise<number> {
  const db = new DynamoDBClient({ endpoint: dynamoEndpoint(), region: "us-east-1", requestHandler: new NodeHttpHandler() });
  try {
    const r = await db.send(new ScanCommand({ TableName: table, FilterExpression: "leaseOwner = :w", ExpressionAttributeValues: { ":w": { S: workerId } } }));
    return r.Count ?? 0;
  } finally {
    db.destroy();
  }
}

describe("kinesis config", () => {
  it("validates start positions with their options, each problem with its path", () => {
    const parsed = kinesisBackend.consumer!.parse({ stream: "s", shard_iterator_type: "AT_SEQUENCE_NUMBER" }, { role: "consumer" });
    expect(parsed.ok).toBe(false);
    if (!parsed.ok) expect(parsed.problems.map((p) => p.path).sort()).toEqual(["shard_id", "start_sequence_number"]);
    const ts = kinesisBackend.consumer!.parse({ stream: "s", shard_iterator_type: "AT_TIMESTAMP", start_timestamp: "not a date" }, { role: "consumer" });
    expect(ts.ok).toBe(false);
    expect(kinesisBackend.consumer!.parse({ stream: "s", lease_table: "t", lease_duration_ms: 2000 }, { role: "consumer" }).ok).toBe(true);
  });
});
