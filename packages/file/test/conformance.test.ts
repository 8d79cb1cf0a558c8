import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { consumerSuite, producerSuite, storeSuite } from "@geowatch/testkit";
import { fileConsumer, fileProducer, fileStore } from "../src/index.js";

const quiet = { debug() {}, info() {}, warn() {}, error() {} };
const capabilities = { ordering: "stream", redelivery: true } as const;

async function channel() {
  const dir = await mkdtemp(join(tmpdir(), "gw-file-conf-"));
  const path = join(dir, "channel.ndjson");
  return {
    producer: () => fileProducer({ path }),
    consumer: () => fileConsumer({ path, pollMs: 50 }, { logger: quiet }),
    teardown: () => rm(dir, { recursive: true, force: true }),
  };
}

consumerSuite("file", { setup: channel, capabilities });
producerSuite("file", { setup: channel, capabilities });
storeSuite("file", {
  setup: async () => {
    const dir = await mkdtemp(join(tmpdir(), "gw-file-store-"));
    return { store: () => fileStore({ dir }), teardown: () => rm(dir, { recursive: true, force: true }) };
  },
  capabilities: { append: true, read: true },
});
