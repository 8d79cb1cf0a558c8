import { requireEnv } from "@geowatch/testkit";
import { kafkaConsumer } from "@geowatch/kafka";
import { describe, it } from "vitest";
import { deadLetterFlow, scaleOutFlow } from "./scaleout.js";

const brokers = () => requireEnv("GEOWATCH_KAFKA_BROKERS", "Start Kafka: bash .ci/servers/kafka.sh start && source .servers/env/kafka.env");

describe("jobs on Kafka (jobs.backend: kafka)", () => {
  const jobs = (run: string) => ({ backend: "kafka", brokers: [brokers()], queue: `${run}.jobs`, buffer: `${run}.index`, group_id: `${run}-workers`, partitions: 4 });

  it("serve + two workers harvest and check the real servers; one worker SIGKILLed mid-job, nothing lost", { timeout: 150_000 }, async () => {
    await scaleOutFlow(jobs);
  });

  it("a job failing max_receives times, and one for a service that is gone, go to <queue>.dead with their reasons", { timeout: 90_000 }, async () => {
    await deadLetterFlow(jobs, (dead, run) => kafkaConsumer({ brokers: [brokers()], groupId: `${run}-dead-reader`, topic: dead, fromBeginning: true }));
  });
});
