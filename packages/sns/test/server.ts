// The test SNS and SQS: env GEOWATCH_MOTO_ENDPOINT (test-all.sh sources .servers/env/moto.env, which
// `bash .ci/servers/moto.sh start` writes; run that first when testing by hand).
import { readFileSync } from "node:fs";
import { fileURLToPath } from "node:url";
import { CreateTopicCommand, DeleteTopicCommand, SNSClient, SubscribeCommand } from "@aws-sdk/client-sns";
import { CreateQueueCommand, DeleteQueueCommand, GetQueueAttributesCommand, SQSClient } from "@aws-sdk/client-sqs";
import { requireEnv } from "@geowatch/testkit";

const ENV_FILE = fileURLToPath(new URL("../../../.servers/env/moto.env", import.meta.url));
const HINT = "Start the test server first: `bash .ci/servers/moto.sh start` (from the repo root), then `source .servers/env/moto.env`.";

// A shell that has not sourced the env file still finds a running server.
try {
  for (const m of readFileSync(ENV_FILE, "utf8").matchAll(/^export (\w+)=(.*)$/gm)) process.env[m[1]!] ??= m[2]!.trim();
} catch {
  // No env file: requireEnv below fails with the hint.
}

export const endpoint = () => requireEnv("GEOWATCH_MOTO_ENDPOINT", HINT);
export const region = () => process.env.AWS_REGION ?? "us-east-1";
export const freshName = (tag: string) => `gw-${tag}-${Date.now().toString(36)}-${Math.random().toString(36).slice(2, 8)}`;

/**
 * A topic with one SQS subscription (raw delivery, optional filter policy on message attributes), made
 * with the raw SDK. Returns the names and a teardown.
 */
export async function topicWithQueue(opts: { fifo?: boolean; filterPolicy?: Record<string, unknown>; topicAttributes?: Record<string, string> } = {}) {
  const suffix = opts.fifo ? ".fifo" : "";
  const topic = freshName("topic") + suffix;
  const queue = freshName("sub") + suffix;
  const sns = new SNSClient({ endpoint: endpoint(), region: region() });
  const sqs = new SQSClient({ endpoint: endpoint(), region: region() });
  try {
    const fifoAttrs: Record<string, string> = opts.fifo ? { FifoTopic: "true", ContentBasedDeduplication: "true" } : {};
    const { TopicArn } = await sns.send(new CreateTopicCommand({ Name: topic, Attributes: { ...fifoAttrs, ...opts.topicAttributes } }));
    const qAttrs: Record<string, string> = opts.fifo ? { FifoQueue: "true", ContentBasedDeduplication: "true" } : {};
    const { QueueUrl } = await sqs.send(new CreateQueueCommand({ QueueName: queue, Attributes: qAttrs }));
    const a = await sqs.send(new GetQueueAttributesCommand({ QueueUrl, AttributeNames: ["QueueArn"] }));
    const attributes: Record<string, string> = { RawMessageDelivery: "true" };
    if (opts.filterPolicy) attributes.FilterPolicy = JSON.stringify(opts.filterPolicy);
    await sns.send(new SubscribeCommand({ TopicArn, Protocol: "sqs", Endpoint: a.Attributes!.QueueArn!, Attributes: attributes }));
    return {
      topic,
      topicArn: TopicArn!,
      queue,
      queueUrl: QueueUrl!,
      teardown: async () => {
        await sns.send(new DeleteTopicCommand({ TopicArn })).catch(() => undefined);
        await sqs.send(new DeleteQueueCommand({ QueueUrl })).catch(() => undefined);
        sns.destroy();
        sqs.destroy();
      },
    };
  } catch (err) {
    sns.destroy();
    sqs.destroy();
    throw new Error(`[sns tests] cannot set up a topic at ${endpoint()}: ${(err as Error).message}. ${HINT}`);
  }
}
