import { defineBackend } from "@geowatch/core";
import { slackProducerSchema } from "./options.js";
import { slackProducer } from "./producer.js";

/** The Slack backend: `backend: slack` in config. */
export const slackBackend = defineBackend({
  name: "slack",
  description: "Slack Web API: posts every message with chat.postMessage (templated text and blocks, per-channel pacing, threads)",
  producer: { options: slackProducerSchema, create: (o, ctx) => slackProducer(o, { logger: ctx.logger, secret: (ref) => ctx.secret(ref) }) },
});

export { slackProducer } from "./producer.js";
export type { SlackClient, SlackProducerDeps } from "./producer.js";
export { slackProducerSchema, DEFAULT_SLACK_API_URL } from "./options.js";
export type { SlackProducerOptions } from "./options.js";
