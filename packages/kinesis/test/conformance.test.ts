import { mkdtempSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { consumerSuite, producerSuite } from "@geowatch/testkit";
import { kinesisConsumer, kinesisProducer, MAX_RECORD_BYTES } from "../src/index.js";
import { createStream, deleteStream, fresh, kinesisEndpoint } from "./server.js";

// Record keys are partition keys; Kinesis records have no headers. 1 MiB counts data and partition key.
const capabilities = { ordering: "stream", redelivery: true, keys: true, maxRecordBytes: MAX_RECORD_BYTES } as const;

/** A fresh 2-shard stream and one checkpoint file (so a new consumer resumes from the last commit). */
async function channel() {
  const stream = fresh("conf");
  await createStream(stream, 2);
  const checkpointPath = join(mkdtempSync(join(tmpdir(), "gw-kinesis-")), "checkpoints.db");
  const common = { stream, endpoint: kinesisEndpoint() };
  return {
    producer: () => kinesisProducer({ ...common, partitionKey: undefined }),
    consumer: () => kinesisConsumer({ ...common, shardIteratorType: "TRIM_HORIZON", checkpointPath, idleTimeBetweenReadsMs: 200 }),
    teardown: () => deleteStream(stream),
  };
}

consumerSuite("kinesis", { setup: channel, capabilities });
producerSuite("kinesis", { setup: channel, capabilities });
