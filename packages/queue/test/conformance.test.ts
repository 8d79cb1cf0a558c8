import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { consumerSuite, producerSuite } from "@geowatch/testkit";
import { queueConsumer, queueProducer } from "../src/index.js";

// Closing a consumer hands back its unacked leases, so a new consumer sees them again (redelivery).
// Ordering is what queueConsumer declares ("none"): FIFO is best effort once leases expire or are requeued;
// test/queue.test.ts covers FIFO delivery on its own.
const capabilities = { acks: true, ordering: "none", redelivery: true, nackRequeue: true, keys: true, headers: true } as const;

async function channel() {
  const dir = await mkdtemp(join(tmpdir(), "gw-queue-conf-"));
  const path = join(dir, "queue.db");
  return {
    producer: () => queueProducer({ path, queue: "conformance" }),
    consumer: () => queueConsumer({ path, queue: "conformance", pollIntervalMs: 20 }),
    teardown: () => rm(dir, { recursive: true, force: true }),
  };
}

consumerSuite("queue", { setup: channel, capabilities });
producerSuite("queue", { setup: channel, capabilities });
