// Where the test Kafka is: env GEOWATCH_KAFKA_BROKERS, else the env file `.ci/servers/kafka.sh start` writes.
import { readFileSync } from "node:fs";
import { fileURLToPath } from "node:url";
import type { Admin } from "kafkajs";
import { loadKafkajs } from "../src/kafkajs-fixes.js";

const ENV_FILE = fileURLToPath(new URL("../../../.servers/env/kafka.env", import.meta.url));
const HINT = "Start the test server first: `bash .ci/servers/kafka.sh start` (from the repo root; needs Java 17 + Maven).";

function fromEnvFile(name: string): string | undefined {
  try {
    const m = new RegExp(`^export ${name}=(.*)$`, "m").exec(readFileSync(ENV_FILE, "utf8"));
    return m?.[1]?.trim();
  } catch {
    return undefined;
  }
}

/** The value of a server env var; throws (the test fails, never skips) with how to start the server. */
export function serverEnv(name: "GEOWATCH_KAFKA_BROKERS" | "GEOWATCH_KAFKA_SASL_BROKERS"): string {
  const value = process.env[name] ?? fromEnvFile(name);
  if (!value) throw new Error(`[kafka tests] ${name} is not set and ${ENV_FILE} has no value. ${HINT}`);
  return value;
}

export const brokers = () => serverEnv("GEOWATCH_KAFKA_BROKERS");

/** A unique topic name for one test. */
export const freshTopic = (tag: string) => `gw-test-${tag}-${Date.now().toString(36)}-${Math.random().toString(36).slice(2, 8)}`;

/** A kafkajs admin for test setup and inspection (the package under test is not used for this). */
export async function withAdmin<T>(fn: (admin: Admin) => Promise<T>): Promise<T> {
  const kafkajs = loadKafkajs();
  const admin = new kafkajs.Kafka({ brokers: brokers().split(","), logLevel: kafkajs.logLevel.NOTHING }).admin();
  try {
    await admin.connect();
  } catch (err) {
    throw new Error(`[kafka tests] cannot reach Kafka at ${brokers()}: ${(err as Error).message}. ${HINT}`);
  }
  try {
    return await fn(admin);
  } finally {
    await admin.disconnect();
  }
}

export async function createTopic(topic: string, partitions = 1): Promise<void> {
  await withAdmin((a) => a.createTopics({ topics: [{ topic, numPartitions: partitions }], waitForLeaders: true }));
  // Under load a new topic's leaders can be reported before its metadata has spread: wait until every
  // partition answers with offsets (kafkajs does not retry "does not host this topic-partition" there).
  const until = Date.now() + 30_000;
  for (;;) {
    try {
      const offsets = await withAdmin((a) => a.fetchTopicOffsets(topic));
      if (offsets.length === partitions) return;
    } catch (err) {
      if (Date.now() > until) throw err;
    }
    if (Date.now() > until) throw new Error(`topic ${topic} has not all of its ${partitions} partitions after 30 s`);
    await new Promise((r) => setTimeout(r, 200));
  }
}

export async function deleteTopics(topics: string[]): Promise<void> {
  await withAdmin((a) => a.deleteTopics({ topics })).catch(() => undefined);
}
