/** Options of the Kinesis backend: one zod schema per role gives validation, types, docs and JSON Schema. */
import type { OptionProblem } from "@geowatch/core";
import { z } from "zod";

const nonEmpty = z.string().min(1, "must be a non-empty string");
const positiveInt = z.number().int("must be an integer").positive("must be > 0");

/** The stream, endpoint and region every role shares. */
const common = {
  stream: nonEmpty.describe("Kinesis data stream name."),
  endpoint: z
    .url("must be a URL")
    .optional()
    .meta({ env: "GEOWATCH_KINESIS_ENDPOINT" })
    .describe("Endpoint URL for a Kinesis-compatible server (kinesalite, LocalStack) or a VPC endpoint. Default: the AWS endpoint of the region."),
  region: nonEmpty
    .optional()
    .describe("AWS region. Default: the SDK's chain (AWS_REGION, the shared config's profile); `us-east-1` when `endpoint` is set and none is found."),
};

export const SHARD_ITERATOR_TYPES = ["LATEST", "TRIM_HORIZON", "AT_TIMESTAMP", "AT_SEQUENCE_NUMBER", "AFTER_SEQUENCE_NUMBER"] as const;

export const kinesisConsumerSchema = z.strictObject({
  ...common,
  application: nonEmpty
    .optional()
    .meta({ default: "geowatch" })
    .describe("Name of the consuming application (like a Kafka group): checkpoints and leases are kept per application and stream."),
  shardIteratorType: z
    .enum(SHARD_ITERATOR_TYPES)
    .optional()
    .meta({ default: "LATEST" })
    .describe("Where a shard of the stream as it was at start, without a checkpoint, is read from. Shards created later by resharding always start at TRIM_HORIZON, after their parents are finished."),
  startTimestamp: z
    .union([nonEmpty, z.number()])
    .optional()
    .describe("With AT_TIMESTAMP: the time to start at (ISO 8601 or ms since the epoch)."),
  startSequenceNumber: z
    .string()
    .regex(/^\d+$/, "must be a sequence number (digits)")
    .optional()
    .describe("With AT_SEQUENCE_NUMBER / AFTER_SEQUENCE_NUMBER: the sequence number; needs `shard_id` (a sequence number belongs to one shard)."),
  shardId: nonEmpty.optional().describe("Read only this shard (no resharding follow-up). Default: every shard."),
  checkpointPath: nonEmpty
    .optional()
    .meta({ path: true, default: "./geowatch-kinesis.db", env: "GEOWATCH_KINESIS_CHECKPOINTS" })
    .describe("SQLite file for checkpoints when `lease_table` is unset (one process per application and stream)."),
  leaseTable: nonEmpty
    .optional()
    .describe("DynamoDB table of shard leases and checkpoints, shared by every process of the application: shards are split between them and a dead process's shards are taken over. Unset: embedded SQLite checkpoints."),
  createLeaseTable: z.boolean().optional().meta({ default: true }).describe("Create the lease table (on-demand capacity) when it does not exist."),
  dynamodbEndpoint: z
    .url("must be a URL")
    .optional()
    .meta({ env: "GEOWATCH_DYNAMODB_ENDPOINT" })
    .describe("Endpoint URL for a DynamoDB-compatible server. Default: the AWS endpoint of the region."),
  leaseDurationMs: positiveInt
    .min(1000, "must be >= 1000")
    .optional()
    .meta({ default: 10000 })
    .describe("A lease not renewed for this long is taken over by another process; renewed every third of it."),
  workerId: nonEmpty.optional().meta({ default: "<host>:<pid>:<random>" }).describe("This process's name as lease owner."),
  maxRecordsPerCall: positiveInt.max(10000, "must be <= 10000").optional().meta({ default: 10000 }).describe("GetRecords `Limit` per call."),
  idleTimeBetweenReadsMs: positiveInt
    .min(200, "must be >= 200 (5 GetRecords calls per second per shard)")
    .optional()
    .meta({ default: 1000 })
    .describe("Wait between GetRecords calls on a shard that returned nothing; a shard that returned records is read again after 200 ms (the API's 5 calls/s)."),
  shardSyncMs: positiveInt.optional().meta({ default: 10000 }).describe("How often the shard list and the leases are looked at again (at once when a shard ends)."),
  maxBufferedRecords: positiveInt.optional().meta({ default: 10000 }).describe("Records read ahead of `receive`; shards are not read while the buffer is full."),
});

export const kinesisProducerSchema = z.strictObject({
  ...common,
  partitionKey: nonEmpty
    .optional()
    .describe("Partition key template: `{name}` is the envelope metadata's `name` (`{actiontype}-{featuretype}`), `{key}` the record key. Default: the record key, else a random key per record."),
  maxTries: positiveInt.optional().meta({ default: 5 }).describe("PutRecords attempts for entries that fail with throttling or an internal error (only those are sent again)."),
  retryBaseMs: positiveInt.optional().meta({ default: 100 }).describe("First backoff between attempts, doubled each time with full jitter."),
  parallelCalls: positiveInt
    .max(32, "must be <= 32")
    .optional()
    .meta({ default: 4 })
    .describe("PutRecords calls in flight at once for one send. A partition key always takes the same call lane, so records of one key keep their order."),
});

/** Options of `kinesisConsumer`. */
export type KinesisConsumerOptions = z.input<typeof kinesisConsumerSchema>;
/** Options of `kinesisProducer`. */
export type KinesisProducerOptions = z.input<typeof kinesisProducerSchema>;

/** Consumer rules the schema cannot say. Paths are camelCase. */
export function checkConsumer(o: KinesisConsumerOptions): OptionProblem[] {
  const problems: OptionProblem[] = [];
  const type = o.shardIteratorType ?? "LATEST";
  if (type === "AT_TIMESTAMP" && o.startTimestamp === undefined) problems.push({ path: "startTimestamp", message: "required with shard_iterator_type AT_TIMESTAMP" });
  if (o.startTimestamp !== undefined && Number.isNaN(timestampOf(o.startTimestamp).getTime())) {
    problems.push({ path: "startTimestamp", message: "must be an ISO 8601 date or ms since the epoch" });
  }
  if (type === "AT_SEQUENCE_NUMBER" || type === "AFTER_SEQUENCE_NUMBER") {
    if (o.startSequenceNumber === undefined) problems.push({ path: "startSequenceNumber", message: `required with shard_iterator_type ${type}` });
    if (o.shardId === undefined) problems.push({ path: "shardId", message: `required with shard_iterator_type ${type}: a sequence number belongs to one shard` });
  }
  return problems;
}

export function timestampOf(v: string | number): Date {
  return typeof v === "number" ? new Date(v) : new Date(/^\d+$/.test(v) ? Number(v) : v);
}
