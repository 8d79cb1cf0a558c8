/** Options of the SNS backend (producer only): one zod schema gives validation, types, docs and JSON Schema. */
import { parseOptions as parseWith } from "@geowatch/core";
import { z } from "zod";

/** SNS's largest message (body plus attributes), in bytes. */
export const SNS_MAX_MESSAGE_BYTES = 262_144;

const nonEmpty = z.string().min(1, "must be a non-empty string");
const positiveInt = z.number().int("must be an integer").positive("must be > 0");

export const snsProducerSchema = z.strictObject({
  topic: nonEmpty.describe("Topic ARN, or a topic name (looked up with ListTopics). A name ending in `.fifo` is a FIFO topic."),
  endpoint: z
    .url("must be a URL")
    .optional()
    .meta({ env: "AWS_ENDPOINT_URL_SNS" })
    .describe("Endpoint of an SNS-compatible server (tests, local stacks). Default: the AWS endpoint of the region."),
  region: nonEmpty.optional().meta({ env: "AWS_REGION" }).describe("AWS region. Default: the AWS SDK's chain (env, shared config)."),
  maxAttempts: positiveInt
    .optional()
    .meta({ default: 3 })
    .describe("Attempts per API call for throttling, 5xx and network errors (the SDK's standard retry: exponential backoff with jitter)."),
  requestTimeoutMs: positiveInt.optional().meta({ default: 5000 }).describe("Socket timeout of one API call in ms."),
  subject: z
    .enum(["none", "template"])
    .optional()
    .meta({ default: "none" })
    .describe("`template`: the record is the template codec's `format: email` output (`{\"subject\",\"text\"}`); the subject becomes the SNS Subject and the text the Message. `none`: the record is the Message."),
  metadataAttributes: z
    .array(nonEmpty)
    .optional()
    .meta({ default: ["actiontype", "targettype", "featuretype"] })
    .describe("Envelope metadata fields published as message attributes, so subscription filter policies can select on them (strings as String, numbers as Number)."),
  groupId: nonEmpty
    .optional()
    .meta({ default: "{key}" })
    .describe("FIFO topics: MessageGroupId as a template of `{key}`, `{headers.NAME}` and `{metadata.FIELD}`; a record it cannot render goes to group `default_group_id`."),
  defaultGroupId: nonEmpty.optional().meta({ default: "geowatch" }).describe("FIFO topics: MessageGroupId of a record that `group_id` cannot render."),
  deduplicationId: nonEmpty
    .optional()
    .describe("FIFO topics: MessageDeduplicationId as a template like `group_id`. Default: unset, and the topic must have ContentBasedDeduplication."),
  maxMessageBytes: positiveInt
    .max(SNS_MAX_MESSAGE_BYTES, `must be <= ${SNS_MAX_MESSAGE_BYTES} (the SNS limit)`)
    .optional()
    .meta({ default: SNS_MAX_MESSAGE_BYTES })
    .describe("Largest message (body, subject and attributes) in bytes; a bigger record fails alone with a non-retryable error and is dead-lettered."),
});

/** Options of `snsProducer`. */
export type SnsProducerOptions = z.input<typeof snsProducerSchema>;

/** Parses options or throws one CONFIG error listing every problem with its path. */
export function parseOptions<T>(schema: z.ZodType, options: unknown, what: string): T {
  return parseWith(schema as z.ZodType<T>, options, what, "sns");
}
