/**
 * Shard leases in a DynamoDB table shared by the processes of one application (the Kinesis Client
 * Library's idea): one item per shard with its owner, a counter the owner bumps to say it is alive, and the
 * checkpoint. Every write is conditional, so two processes never both believe they hold a shard for long:
 * a lease whose counter has not moved for `leaseDurationMs` is taken over, and an owner whose renewal fails
 * drops the shard. Processes split the eligible shards evenly, stealing one at a time from the busiest.
 */
import {
  ConditionalCheckFailedException, CreateTableCommand, DescribeTableCommand, PutItemCommand, QueryCommand,
  ResourceInUseException, ResourceNotFoundException, UpdateItemCommand,
} from "@aws-sdk/client-dynamodb";
import type { AttributeValue, DynamoDBClient } from "@aws-sdk/client-dynamodb";
import type { Logger } from "@geowatch/core";
import { reasonOf, sleep } from "@geowatch/core";
import { awsError } from "./client.js";
import { eligibleShards } from "./checkpoints.js";
import type { Coordinator, OwnedShard, ShardInfo, SyncResult } from "./checkpoints.js";

export interface LeaseOptions {
  table: string;
  /** `<application>/<stream>`: the table's partition key, so one table serves many applications. */
  group: string;
  workerId: string;
  leaseDurationMs: number;
  createTable: boolean;
  logger?: Logger | undefined;
}

interface Lease {
  shardId: string;
  owner: string | undefined;
  counter: number;
  checkpoint: string | undefined;
  finished: boolean;
}

const isConditionFailed = (err: unknown) => err instanceof ConditionalCheckFailedException || (err as { name?: string })?.name === "ConditionalCheckFailedException";

function leaseOf(item: Record<string, AttributeValue>): Lease {
  return {
    shardId: item.shardId?.S ?? "",
    owner: item.leaseOwner?.S,
    counter: Number(item.leaseCounter?.N ?? "0"),
    checkpoint: item.checkpoint?.S,
    finished: item.finished?.BOOL ?? false,
  };
}

export class DynamoCoordinator implements Coordinator {
  /** Leases we hold: the counter we last wrote and when a renewal last succeeded. */
  private readonly held = new Map<string, { counter: number; renewedAt: number }>();
  /** Each lease as last seen, and when its counter or owner last changed (our clock, as the KCL does). */
  private readonly seen = new Map<string, { counter: number; owner: string | undefined; changedAt: number }>();
  private timer: NodeJS.Timeout | undefined;
  private renewing: Promise<void> | undefined;
  private failing: string | undefined;
  private closed = false;

  constructor(
    private readonly db: DynamoDBClient,
    private readonly o: LeaseOptions,
  ) {}

  async open(): Promise<void> {
    await this.ensureTable();
    // Renew three times per lease duration; the timer does not keep the process alive.
    this.timer = setInterval(() => {
      this.renewing ??= this.renew().finally(() => (this.renewing = undefined));
    }, Math.max(200, Math.floor(this.o.leaseDurationMs / 3)));
    this.timer.unref();
  }

  private async ensureTable(): Promise<void> {
    const { table } = this.o;
    try {
      const d = await this.db.send(new DescribeTableCommand({ TableName: table }));
      if (d.Table?.TableStatus === "ACTIVE") return;
    } catch (err) {
      if (!(err instanceof ResourceNotFoundException || (err as { name?: string })?.name === "ResourceNotFoundException")) throw awsError(err, `describing lease table "${table}"`);
      if (!this.o.createTable) throw awsError(err, `lease table "${table}" does not exist (create_lease_table is off)`);
      try {
        await this.db.send(
          new CreateTableCommand({
            TableName: table,
            BillingMode: "PAY_PER_REQUEST",
            AttributeDefinitions: [
              { AttributeName: "leaseGroup", AttributeType: "S" },
              { AttributeName: "shardId", AttributeType: "S" },
            ],
            KeySchema: [
              { AttributeName: "leaseGroup", KeyType: "HASH" },
              { AttributeName: "shardId", KeyType: "RANGE" },
            ],
          }),
        );
        this.o.logger?.info("kinesis: created lease table", { table });
      } catch (e) {
        // Another process created it first.
        if (!(e instanceof ResourceInUseException || (e as { name?: string })?.name === "ResourceInUseException")) throw awsError(e, `creating lease table "${table}"`);
      }
    }
    for (let i = 0; i < 120; i++) {
      const d = await this.db.send(new DescribeTableCommand({ TableName: table })).catch((err: unknown) => {
        throw awsError(err, `describing lease table "${table}"`);
      });
      if (d.Table?.TableStatus === "ACTIVE") return;
      await sleep(500);
    }
    throw awsError(new Error("not ACTIVE after 60 s"), `lease table "${table}"`);
  }

  private key(shardId: string): Record<string, AttributeValue> {
    return { leaseGroup: { S: this.o.group }, shardId: { S: shardId } };
  }

  private async query(): Promise<Lease[]> {
    const out: Lease[] = [];
    let start: Record<string, AttributeValue> | undefined;
    do {
      const r = await this.db.send(
        new QueryCommand({
          TableName: this.o.table,
          KeyConditionExpression: "leaseGroup = :g",
          ExpressionAttributeValues: { ":g": { S: this.o.group } },
          ConsistentRead: true,
          ...(start ? { ExclusiveStartKey: start } : {}),
        }),
      );
      for (const item of r.Items ?? []) out.push(leaseOf(item));
      start = r.LastEvaluatedKey;
    } while (start);
    return out;
  }

  async sync(shards: ShardInfo[]): Promise<SyncResult> {
    try {
      const result = await this.doSync(shards);
      this.failing = undefined;
      return result;
    } catch (err) {
      this.failing = reasonOf(awsError(err, `lease table "${this.o.table}"`));
      this.dropStale();
      throw awsError(err, `syncing leases in "${this.o.table}"`);
    }
  }

  private async doSync(shards: ShardInfo[]): Promise<SyncResult> {
    const { workerId: me, leaseDurationMs } = this.o;
    let leases = await this.query();
    const known = new Set(leases.map((l) => l.shardId));
    let created = false;
    for (const s of shards) {
      if (known.has(s.id)) continue;
      try {
        await this.db.send(
          new PutItemCommand({
            TableName: this.o.table,
            Item: { ...this.key(s.id), leaseCounter: { N: "0" }, finished: { BOOL: false } },
            ConditionExpression: "attribute_not_exists(shardId)",
          }),
        );
      } catch (err) {
        if (!isConditionFailed(err)) throw err;
      }
      created = true;
    }
    if (created) leases = await this.query();

    const now = Date.now();
    for (const l of leases) {
      const prev = this.seen.get(l.shardId);
      if (!prev || prev.counter !== l.counter || prev.owner !== l.owner) this.seen.set(l.shardId, { counter: l.counter, owner: l.owner, changedAt: now });
      // Someone else owns it now, or it is finished: no longer ours.
      if (this.held.has(l.shardId) && (l.owner !== me || l.finished)) this.lose(l.shardId, l.owner);
    }
    this.dropStale();
    const finished = new Set(leases.filter((l) => l.finished).map((l) => l.shardId));
    const eligible = new Set(eligibleShards(shards, finished));
    const expired = (l: Lease) => l.owner === undefined || now - (this.seen.get(l.shardId)?.changedAt ?? now) > leaseDurationMs;
    const live = leases.filter((l) => eligible.has(l.shardId) && !expired(l));
    const perOwner = new Map<string, Lease[]>();
    for (const l of live) perOwner.set(l.owner!, [...(perOwner.get(l.owner!) ?? []), l]);
    const workers = new Set([...perOwner.keys(), me]).size;
    const target = Math.ceil(eligible.size / workers);
    let mine = [...this.held.keys()].filter((id) => eligible.has(id)).length;

    const checkpoints = new Map(leases.map((l) => [l.shardId, l.checkpoint]));
    // Free or expired leases first, in shard order so the split is stable.
    for (const l of leases) {
      if (mine >= target) break;
      if (!eligible.has(l.shardId) || this.held.has(l.shardId) || !expired(l)) continue;
      const got = await this.take(l);
      if (got) {
        checkpoints.set(l.shardId, got.checkpoint);
        mine++;
      }
    }
    // Still short: steal one lease from the busiest process when it holds more than its share.
    if (mine < target) {
      const busiest = [...perOwner.entries()].filter(([owner]) => owner !== me).sort((a, b) => b[1].length - a[1].length)[0];
      if (busiest && busiest[1].length > target) {
        const victim = busiest[1][busiest[1].length - 1]!;
        const got = await this.take(victim);
        if (got) {
          checkpoints.set(victim.shardId, got.checkpoint);
          this.o.logger?.info("kinesis: took a lease from a busier process", { shard: victim.shardId, from: victim.owner });
        }
      }
    }
    const owned = new Map<string, OwnedShard>();
    for (const id of this.held.keys()) if (eligible.has(id)) owned.set(id, { checkpoint: checkpoints.get(id) });
    return { owned, finished };
  }

  /** Takes a lease if nobody changed it since we looked; returns it as written. */
  private async take(l: Lease): Promise<Lease | undefined> {
    const me = this.o.workerId;
    try {
      const r = await this.db.send(
        new UpdateItemCommand({
          TableName: this.o.table,
          Key: this.key(l.shardId),
          UpdateExpression: "SET leaseOwner = :me, leaseCounter = leaseCounter + :one",
          ConditionExpression: "leaseCounter = :c AND finished = :f",
          ExpressionAttributeValues: { ":me": { S: me }, ":one": { N: "1" }, ":c": { N: String(l.counter) }, ":f": { BOOL: false } },
          ReturnValues: "ALL_NEW",
        }),
      );
      const now = leaseOf(r.Attributes ?? {});
      this.held.set(l.shardId, { counter: now.counter, renewedAt: Date.now() });
      this.seen.set(l.shardId, { counter: now.counter, owner: me, changedAt: Date.now() });
      this.o.logger?.info("kinesis: took lease", { shard: l.shardId, previousOwner: l.owner ?? null, worker: me });
      return now;
    } catch (err) {
      if (isConditionFailed(err)) return undefined;
      throw err;
    }
  }

  /** Bumps the counter of every held lease; a failed condition means another process took it. */
  private async renew(): Promise<void> {
    if (this.closed) return;
    const me = this.o.workerId;
    await Promise.all(
      [...this.held.entries()].map(async ([shardId, h]) => {
        try {
          await this.db.send(
            new UpdateItemCommand({
              TableName: this.o.table,
              Key: this.key(shardId),
              UpdateExpression: "SET leaseCounter = leaseCounter + :one",
              ConditionExpression: "leaseOwner = :me AND leaseCounter = :c",
              ExpressionAttributeValues: { ":me": { S: me }, ":one": { N: "1" }, ":c": { N: String(h.counter) } },
            }),
          );
          if (this.held.get(shardId) === h) {
            h.counter += 1;
            h.renewedAt = Date.now();
          }
          this.failing = undefined;
        } catch (err) {
          if (isConditionFailed(err)) this.lose(shardId, undefined);
          else this.failing = reasonOf(awsError(err, `renewing leases in "${this.o.table}"`));
        }
      }),
    );
    this.dropStale();
  }

  /** A lease we could not renew for a whole lease duration may be someone else's by now. */
  private dropStale(): void {
    const now = Date.now();
    for (const [shardId, h] of this.held) if (now - h.renewedAt > this.o.leaseDurationMs) this.lose(shardId, undefined);
  }

  private lose(shardId: string, to: string | undefined): void {
    if (!this.held.delete(shardId)) return;
    this.o.logger?.warn("kinesis: lost lease", { shard: shardId, to: to ?? null, worker: this.o.workerId });
  }

  owns(shardId: string): boolean {
    return this.held.has(shardId);
  }

  async checkpoint(shardId: string, sequenceNumber: string | undefined, finished: boolean): Promise<boolean> {
    if (!this.held.has(shardId)) return false;
    const sets: string[] = [];
    const values: Record<string, AttributeValue> = { ":me": { S: this.o.workerId } };
    if (sequenceNumber !== undefined) {
      sets.push("checkpoint = :s");
      values[":s"] = { S: sequenceNumber };
    }
    if (finished) {
      sets.push("finished = :t");
      values[":t"] = { BOOL: true };
    }
    if (sets.length === 0) return true;
    try {
      await this.db.send(
        new UpdateItemCommand({
          TableName: this.o.table,
          Key: this.key(shardId),
          // A finished shard is given up at once, so it never counts towards anyone's share.
          UpdateExpression: `SET ${sets.join(", ")}${finished ? " REMOVE leaseOwner" : ""}`,
          ConditionExpression: "leaseOwner = :me",
          ExpressionAttributeValues: values,
        }),
      );
      if (finished) this.held.delete(shardId);
      return true;
    } catch (err) {
      if (isConditionFailed(err)) {
        this.lose(shardId, undefined);
        return false;
      }
      throw awsError(err, `checkpointing shard ${shardId} in "${this.o.table}"`);
    }
  }

  problem(): string | undefined {
    return this.failing;
  }

  /** Gives every held lease up, so other processes take the shards at once instead of after expiry. */
  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    clearInterval(this.timer);
    await this.renewing?.catch(() => undefined);
    const me = this.o.workerId;
    await Promise.all(
      [...this.held.keys()].map((shardId) =>
        this.db
          .send(
            new UpdateItemCommand({
              TableName: this.o.table,
              Key: this.key(shardId),
              UpdateExpression: "REMOVE leaseOwner",
              ConditionExpression: "leaseOwner = :me",
              ExpressionAttributeValues: { ":me": { S: me } },
            }),
          )
          .catch(() => undefined),
      ),
    );
    this.held.clear();
  }
}
