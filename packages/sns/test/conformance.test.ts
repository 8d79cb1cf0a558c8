import { sqsConsumer } from "@geowatch/sqs";
import { producerSuite } from "@geowatch/testkit";
import { SNS_MAX_MESSAGE_BYTES, snsProducer } from "../src/index.js";
import { endpoint, region, topicWithQueue } from "./server.js";

/** What reached the server is read through an SQS subscription with raw delivery (key and headers as attributes). */
async function channel() {
  const t = await topicWithQueue();
  return {
    producer: () => snsProducer({ endpoint: endpoint(), region: region(), topic: t.topic }),
    consumer: () => sqsConsumer({ endpoint: endpoint(), region: region(), queue: t.queue, waitTimeSeconds: 1 }),
    teardown: t.teardown,
  };
}

producerSuite("sns", { setup: channel, capabilities: { acks: true, keys: true, headers: true, maxRecordBytes: SNS_MAX_MESSAGE_BYTES } });
