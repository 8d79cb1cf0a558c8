import { requireEnv } from "@geowatch/testkit";
import { amqpConsumer } from "@geowatch/amqp";
import { describe, it } from "vitest";
import { deadLetterFlow, scaleOutFlow } from "./scaleout.js";

const url = () => requireEnv("GEOWATCH_AMQP_URL", "Start RabbitMQ: bash .ci/servers/rabbitmq.sh start && source .servers/env/rabbitmq.env");

describe("jobs on RabbitMQ (jobs.backend: amqp)", () => {
  const jobs = (run: string) => ({ backend: "amqp", url: url(), queue: `${run}.jobs`, buffer: `${run}.index`, prefetch: 4 });

  it("serve + two workers harvest and check the real servers; one worker SIGKILLed mid-job, nothing lost", { timeout: 150_000 }, async () => {
    await scaleOutFlow(jobs);
  });

  it("a job failing max_receives times, and one for a service that is gone, go to <queue>.dead with their reasons", { timeout: 90_000 }, async () => {
    await deadLetterFlow(jobs, (dead) => amqpConsumer({ url: url(), queue: dead }));
  });
});
