/** Options of the Slack producer: one zod schema gives validation, types, docs and JSON Schema. */
import { parseOptions as parseWith } from "@geowatch/core";
import { z } from "zod";

/** Slack's Web API base URL. */
export const DEFAULT_SLACK_API_URL = "https://slack.com/api/";

const nonEmpty = z.string().min(1, "must be a non-empty string");

export const slackProducerSchema = z.strictObject({
  token: nonEmpty
    .optional()
    .meta({ env: "GEOWATCH_SLACK_TOKEN", secret: true })
    .describe("Bot token (`xoxb-...`) sent as `Authorization: Bearer`; never logged. Use `${VAR}` or leave it out to read GEOWATCH_SLACK_TOKEN."),
  channel: nonEmpty
    .optional()
    .describe(
      "Channel name (`#alerts`) or id (`C0123ABCD`), or a template over the message's envelope metadata such as `{{metadata.recipient}}`. Default: the node's `topic`, else the message's `metadata.recipient`.",
    ),
  apiUrl: nonEmpty
    .optional()
    .meta({ default: DEFAULT_SLACK_API_URL, env: "GEOWATCH_SLACK_API_URL" })
    .describe("Web API base URL ending in `/api/` (a proxy, or a local test server)."),
  ratePerChannel: z
    .number()
    .positive("must be > 0")
    .optional()
    .meta({ default: 1 })
    .describe("Messages per second posted to one channel (Slack allows about one); others wait in that channel's queue, in order. One send takes at most 20 s worth of messages (20 at the default rate), so it stays within the node's 30 s `timeout`."),
  threadBy: z
    .enum(["none", "track", "fence", "track_fence"])
    .optional()
    .meta({ default: "none" })
    .describe(
      "Thread the messages of one track (`metadata.track`), fence (`metadata.fence`) or both under the first message posted for it. The first message's `ts` is kept in memory only: after a restart a new thread starts.",
    ),
  maxThreads: z
    .number()
    .int("must be an integer")
    .positive("must be > 0")
    .optional()
    .meta({ default: 10000 })
    .describe("Threads remembered per producer; the least recently used is forgotten beyond it (its next message starts a new thread)."),
  blocks: z
    .boolean()
    .optional()
    .meta({ default: false })
    .describe("Post the text as a Block Kit `section` (mrkdwn) when the payload brings no `blocks` of its own; `text` stays as the notification fallback."),
  requestTimeoutMs: z
    .number()
    .int("must be an integer")
    .positive("must be > 0")
    .optional()
    .meta({ default: 10000 })
    .describe("Timeout of one Web API request in ms."),
});

/** Options of `slackProducer`. */
export type SlackProducerOptions = z.input<typeof slackProducerSchema>;

/** Parses options or throws one CONFIG error listing every problem with its path. */
export function parseOptions<T>(schema: z.ZodType, options: unknown, what: string): T {
  return parseWith(schema as z.ZodType<T>, options, what, "slack");
}
