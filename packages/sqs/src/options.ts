/** Options of the SQS backend's roles: one zod schema per role gives validation, types, docs and JSON Schema. */
import { parseOptions as parseWith } from "@geowatch/core";
import { z } from "zod";

/** SQS's default largest message (body plus attributes), in bytes. */
export const SQS_MAX_MESSAGE_BYTES = 262_144;

const nonEmpty = z.string().min(1, "must be a non-empty string");
const positiveInt = z.number().int("must be an integer").positive("must be > 0");

/** Options every role has: where the queue is and how to reach it. */
const connection = {
  queue: nonEmpty.describe("Queue name or queue URL. A name is resolved with GetQueueUrl; a name ending in `.fifo` is a FIFO queue."),
  endpoint: z
    .url("must be a URL")
    .optional()
    .meta({ env: "AWS_ENDPOINT_URL_SQS" })
    .describe("Endpoint of an SQS-compatible server (tests, local stacks). Default: the AWS endpoint of the region."),
  region: nonEmpty.optional().meta({ env: "AWS_REGION" }).describe("AWS region. Default: the AWS SDK's chain (env, shared config)."),
  maxAttempts: positiveInt
    .optional()
    .meta({ default: 3 })
    .describe("Attempts per API call for throttling, 5xx and network errors (the SDK's standard retry: exponential backoff with jitter)."),
  requestTimeoutMs: positiveInt.optional().meta({ default: 5000 }).describe("Socket timeout of one API call in ms, on top of a long poll's wait."),
};

export const sqsConsumerSchema = z.strictObject({
  ...connection,
  waitTimeSeconds: z
    .number()
    .int("must be an integer")
    .min(0, "must be >= 0")
    .max(20, "must be <= 20 (the SQS limit)")
    .optional()
    .meta({ default: 20 })
    .describe("Long-poll wait of each ReceiveMessage, in seconds."),
  receivers: positiveInt
    .max(20, "must be <= 20")
    .optional()
    .meta({ default: 3 })
    .describe("ReceiveMessage calls kept in flight at once (each returns up to 10 messages)."),
  visibilityTimeoutSeconds: positiveInt
    .max(43_200, "must be <= 43200 (12 hours, the SQS limit)")
    .optional()
    .meta({ default: 30 })
    .describe("Visibility timeout asked for on receive; messages still in flight are extended every third of it."),
  extendVisibility: z
    .boolean()
    .optional()
    .meta({ default: true })
    .describe("Extend the visibility of received messages not yet acked or nacked while this process lives; a killed process stops, and its messages come back after the timeout."),
  maxHoldMs: positiveInt
    .optional()
    .meta({ default: 3_600_000 })
    .describe("Stop extending a message's visibility this many ms after it was received, so a stuck process does not hold it for ever."),
  maxInFlight: positiveInt
    .optional()
    .meta({ default: 200 })
    .describe("Most messages this consumer holds (received, not yet acked or nacked); receivers pause at this bound. Besides, at most 10 x receivers wait received but not yet handed to the broker."),
});

export const sqsProducerSchema = z.strictObject({
  ...connection,
  groupId: nonEmpty
    .optional()
    .meta({ default: "{key}" })
    .describe("FIFO queues: MessageGroupId as a template of `{key}`, `{headers.NAME}` and `{metadata.FIELD}`; a record it cannot render goes to group `default_group_id`."),
  defaultGroupId: nonEmpty.optional().meta({ default: "geowatch" }).describe("FIFO queues: MessageGroupId of a record that `group_id` cannot render (no key, say)."),
  deduplicationId: nonEmpty
    .optional()
    .describe("FIFO queues: MessageDeduplicationId as a template like `group_id`. Default: unset, and the queue must have ContentBasedDeduplication."),
  delaySeconds: z.number().int("must be an integer").min(0, "must be >= 0").max(900, "must be <= 900").optional().describe("Delay of every message, in seconds (standard queues). Default: the queue's."),
  maxMessageBytes: positiveInt
    .optional()
    .meta({ default: SQS_MAX_MESSAGE_BYTES })
    .describe("Largest message (body plus attributes) in bytes; a bigger record fails alone with a non-retryable error and is dead-lettered. Match the queue's MaximumMessageSize."),
});

/** Options of `sqsConsumer`. */
export type SqsConsumerOptions = z.input<typeof sqsConsumerSchema>;
/** Options of `sqsProducer`. */
export type SqsProducerOptions = z.input<typeof sqsProducerSchema>;
/** What both roles share. */
export type SqsConnectionOptions = Pick<SqsConsumerOptions, keyof typeof connection>;

/** Parses options or throws one CONFIG error listing every problem with its path. */
export function parseOptions<T>(schema: z.ZodType, options: unknown, what: string): T {
  return parseWith(schema as z.ZodType<T>, options, what, "sqs");
}
