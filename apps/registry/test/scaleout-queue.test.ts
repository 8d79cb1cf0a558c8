import { queueConsumer } from "@geowatch/queue";
import { describe, it } from "vitest";
import { deadLetterFlow, scaleOutFlow } from "./scaleout.js";

describe("jobs on @geowatch/queue (the default backend), workers as separate processes", () => {
  // One SQLite file shared by the processes; a killed worker's job is leased again after visibility_timeout_ms.
  const jobs = (run: string) => ({ backend: "queue", path: `./${run}-jobs.db`, visibility_timeout_ms: 4000 });

  it("serve + two workers harvest and check the real servers; one worker SIGKILLed mid-job, nothing lost", { timeout: 150_000 }, async () => {
    await scaleOutFlow(jobs);
  });

  it("a job failing max_receives times, and one for a service that is gone, go to <queue>.dead with their reasons", { timeout: 90_000 }, async () => {
    await deadLetterFlow(jobs, (dead, _run, path) => queueConsumer({ path: path!, queue: dead }));
  });
});
