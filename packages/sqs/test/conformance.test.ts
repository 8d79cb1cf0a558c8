import { consumerSuite, producerSuite } from "@geowatch/testkit";
import { SQS_MAX_MESSAGE_BYTES, sqsConsumer, sqsProducer } from "../src/index.js";
import { createQueue, deleteQueue, endpoint, freshName, region } from "./server.js";

const capabilities = { acks: true, ordering: "none", redelivery: true, nackRequeue: true, keys: true, headers: true, maxRecordBytes: SQS_MAX_MESSAGE_BYTES } as const;

/** A fresh standard queue; short waits so the suite's empty-wait and abort checks stay quick. */
async function channel() {
  const name = freshName("conf");
  const url = await createQueue(name);
  const common = { endpoint: endpoint(), region: region(), queue: name };
  return {
    producer: () => sqsProducer(common),
    consumer: () => sqsConsumer({ ...common, waitTimeSeconds: 1 }),
    teardown: () => deleteQueue(url),
  };
}

consumerSuite("sqs", { setup: channel, capabilities });
producerSuite("sqs", { setup: channel, capabilities });
