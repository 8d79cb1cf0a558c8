// Jobs across machines: the fast and slow queues on the REAL Kafka (.ci/servers/kafka.sh), RabbitMQ
// (.ci/servers/rabbitmq.sh) and SQS (moto, .ci/servers/moto.sh). Per engine: `serve` queues a job of real CKAN
// rows, a separate `geowatch-packager worker --queue slow` process takes it and is SIGKILLed mid-job, a second
// worker process gets the job again (nothing was acknowledged), finishes it whole and mails the link.
// Once more on RabbitMQ with the state on PostgreSQL: then the worker processes share no file with `serve` but
// the ZIP store directory (a data_dir of their own), as workers on other machines would.
import { spawn } from "node:child_process";
import type { ChildProcess } from "node:child_process";
import { existsSync, mkdtempSync, readdirSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { CreateQueueCommand, DeleteQueueCommand, SQSClient } from "@aws-sdk/client-sqs";
import { requireEnv } from "@geowatch/testkit";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { startPackager } from "../src/app.js";
import type { RunningPackager } from "../src/app.js";
import { createPgDatabase, ckanToken, makeResource, mailsTo, post, py, searchUrl, smtpEnv, stateFor, testConfig, waitFor } from "./helpers.js";
import type { StateEngine } from "./helpers.js";

const SECRET = "test-secret-0123456789";

/** A loopback port nothing listens on (bound, then closed). */
async function closedPort(): Promise<number> {
  const { createServer } = await import("node:net");
  const srv = createServer();
  await new Promise<void>((res) => srv.listen(0, "127.0.0.1", res));
  const port = (srv.address() as { port: number }).port;
  await new Promise((res) => srv.close(res));
  return port;
}
const BIN = join(import.meta.dirname, "..", "bin", "geowatch-packager.js");
const N = 600;
let rid = "";

beforeAll(async () => {
  rid = await makeResource(N);
});

interface Engine {
  name: string;
  /** The fast and slow nodes, as a config file spells them. */
  nodes(run: string): Promise<{ fast: Record<string, unknown>; slow: Record<string, unknown> }>;
  cleanup?(): Promise<void>;
  /** Longest wait for the job to come back after its worker was killed. */
  redeliveryMs: number;
}

const kafka: Engine = {
  name: "kafka",
  redeliveryMs: 90_000,
  async nodes(run) {
    const brokers = requireEnv("GEOWATCH_KAFKA_BROKERS", "Start Kafka: bash .ci/servers/kafka.sh start, then source .servers/env/kafka.env");
    // One node per queue, both ends: group_id and from_beginning are the consumer's only (left out of the producer end).
    const node = (q: string) => ({ backend: "kafka", brokers, topic: `packager.${q}.${run}`, group_id: `packager-workers-${run}`, from_beginning: true, codec: "json" });
    return { fast: node("fast"), slow: node("slow") };
  },
};

const amqp: Engine = {
  name: "amqp",
  redeliveryMs: 60_000,
  async nodes(run) {
    const url = requireEnv("GEOWATCH_AMQP_URL", "Start RabbitMQ: bash .ci/servers/rabbitmq.sh start, then source .servers/env/rabbitmq.env");
    const node = (q: string) => ({ backend: "amqp", url, queue: `packager.${q}.${run}`, prefetch: 1 });
    return { fast: node("fast"), slow: node("slow") };
  },
};

const sqsQueues: string[] = [];
let sqsClient: SQSClient | undefined;
const sqs: Engine = {
  name: "sqs",
  redeliveryMs: 60_000,
  async nodes(run) {
    const endpoint = requireEnv("GEOWATCH_MOTO_ENDPOINT", "Start moto: bash .ci/servers/moto.sh start, then source .servers/env/moto.env");
    const region = requireEnv("AWS_REGION", "source .servers/env/moto.env");
    sqsClient ??= new SQSClient({ endpoint, region });
    const node = async (q: string) => {
      const name = `packager-${q}-${run}`;
      // SQS queues are made by their owner, not by the packager (no ensureTopic on SQS).
      const out = await sqsClient!.send(new CreateQueueCommand({ QueueName: name }));
      sqsQueues.push(out.QueueUrl!);
      return { backend: "sqs", queue: name, endpoint, region, visibility_timeout_seconds: 3, wait_time_seconds: 1, max_in_flight: 1 };
    };
    return { fast: await node("fast"), slow: await node("slow") };
  },
  async cleanup() {
    for (const url of sqsQueues) await sqsClient?.send(new DeleteQueueCommand({ QueueUrl: url })).catch(() => undefined);
    sqsClient?.destroy();
  },
};

const runs: [Engine, StateEngine][] = [
  [amqp, "sqlite"],
  [sqs, "sqlite"],
  [kafka, "sqlite"],
  [amqp, "postgres"],
];
for (const [engine, stateEngine] of runs) {
  describe(`jobs on ${engine.name}${stateEngine === "postgres" ? ", state on postgres" : ""}`, () => {
    let app: RunningPackager;
    let configFile = "";
    let workerDir = "";
    let pgDb: Awaited<ReturnType<typeof createPgDatabase>> | undefined;
    const children: ChildProcess[] = [];

    const worker = (): ChildProcess => {
      const child = spawn(process.execPath, [BIN, "worker", "--queue", "slow", "-c", configFile], { stdio: ["ignore", "ignore", "pipe"] });
      let err = "";
      child.stderr!.on("data", (d: Buffer) => (err = (err + d.toString()).slice(-4000)));
      child.once("exit", (code) => {
        if (code !== 0 && code !== null) console.error(`worker exited ${code}: ${err}`);
      });
      children.push(child);
      return child;
    };
    const jobState = async (id: string) => {
      const r = await post(app.url, "/job_status", { secret: SECRET, job_id: id });
      return r.body.job as { state: string; done: number; total: number; attempts: number; error: string | null };
    };

    beforeAll(async () => {
      const run = `${Date.now()}${Math.floor(Math.random() * 1e4)}`;
      const jobs = await engine.nodes(run);
      pgDb = stateEngine === "postgres" ? await createPgDatabase() : undefined;
      const config = testConfig({ workers: { fast: 0, slow: 0 }, slowRequest: 1, pageSize: 10, jobs, ...stateFor(stateEngine, pgDb?.url) });
      app = await startPackager(config);
      const s = smtpEnv();
      workerDir = stateEngine === "sqlite" ? config.dataDir : mkdtempSync(join(tmpdir(), "gw-packager-worker-"));
      configFile = join(workerDir, "packager.json");
      writeFileSync(
        configFile,
        JSON.stringify({
          secret: SECRET,
          data_dir: workerDir,
          ...(stateEngine === "postgres" ? { state: { engine: "postgres", url: pgDb!.url }, store_directory: config.storeDirectory } : {}),
          public_url: app.url,
          allow_hosts: ["127.0.0.1"],
          page_size: 10,
          log_level: "warn",
          jobs,
          email: { host: s.host, port: s.port, user: s.user, password_file: s.passwordFile, ca: s.ca, from: "portal@example.org" },
        }),
      );
    });
    afterAll(async () => {
      for (const c of children) if (c.exitCode === null && c.signalCode === null) c.kill("SIGKILL");
      await app?.close();
      await engine.cleanup?.();
      if (app) rmSync(app.service.config.dataDir, { recursive: true, force: true });
      if (workerDir) rmSync(workerDir, { recursive: true, force: true });
      await pgDb?.drop();
    });

    it("serve queues on it; a worker process SIGKILLed mid-job leaves the job to the next one, which finishes it whole", async () => {
      const to = `${engine.name}-${Date.now()}@example.org`;
      const r = await post(app.url, "/package_datastore", { secret: SECRET, api_url: searchUrl(), resource_id: rid, email: to, key: ckanToken() });
      expect(r.body, JSON.stringify(r.body)).toMatchObject({ success: true, queue: "slow", rows: N });
      const id = String(r.body.job_id);
      const status = (await post(app.url, "/status", { secret: SECRET })).body;
      expect(status).toMatchObject({ queue_length: 1, queues: { slow: { length: 1, ready: 1, backend: engine.name } } });

      const a = worker();
      const mid = await waitFor("the first worker mid-job", async () => {
        const j = await jobState(id);
        return j.state === "running" && j.done > 0 && j.done < N ? j : undefined;
      }, 60_000);
      a.kill("SIGKILL");
      await new Promise((res) => a.once("exit", res));
      expect(mid.attempts).toBe(1);
      expect(readdirSync(app.service.config.storeDirectory)).toEqual([]); // no half ZIP in the store

      const b = worker();
      const done = await waitFor("the job done by the second worker", async () => {
        const j = await jobState(id);
        return j.state === "done" ? j : undefined;
      }, engine.redeliveryMs);
      expect(done).toMatchObject({ attempts: 2, done: N, total: N, error: null });
      const mail = await waitFor("mail", () => mailsTo(to)[0]);
      const link = /https?:\/\/\S+\/download\/\S+/.exec(mail.body)![0];
      const zip = join(app.service.config.dataDir, `${engine.name}.zip`);
      writeFileSync(zip, Buffer.from(await (await fetch(link)).arrayBuffer()));
      const rows = py<number>("import csv, io, sys, zipfile\nz = zipfile.ZipFile(sys.argv[1])\nprint(len(list(csv.reader(io.StringIO(z.read(z.namelist()[0]).decode(), newline='')))) - 1)", zip);
      expect(rows).toBe(N);
      // /status is a snapshot refreshed every 200 ms off the request path: it catches up within that, not at once.
      await expect.poll(async () => (await post(app.url, "/status", { secret: SECRET })).body, { timeout: 2000, interval: 50 }).toMatchObject({ queue_length: 0, processed_requests: 1 });

      // The acknowledged job is not delivered again: a second job behind it is the next one the worker takes.
      const r2 = await post(app.url, "/package_datastore", { secret: SECRET, api_url: searchUrl(), resource_id: rid, email: to, key: ckanToken(), limit: 5 });
      expect(r2.body).toMatchObject({ success: true, queue: "slow" });
      const second = await waitFor("the second job done", async () => {
        const j = await jobState(String(r2.body.job_id));
        return j.state === "done" ? j : undefined;
      }, 60_000);
      expect(second).toMatchObject({ attempts: 1, done: 5 });
      expect((await jobState(id)).attempts).toBe(2);

      // A job that keeps failing with a retryable error goes back to the channel (nack with requeue, or sent again
      // and its offset committed on Kafka) until max_attempts (5), then ends failed with the last error.
      const dead = `http://127.0.0.1:${await closedPort()}/api/3/action/datastore_search`;
      const r3 = await post(app.url, "/package_datastore", { secret: SECRET, api_url: dead, resource_id: rid, email: to });
      expect(r3.body).toMatchObject({ success: true, queue: "slow", rows: null });
      const failed = await waitFor("the failing job failed", async () => {
        const j = await jobState(String(r3.body.job_id));
        return j.state === "failed" ? j : undefined;
      }, 90_000);
      expect(failed.attempts).toBe(5);
      expect(failed.error).toMatch(/ECONNREFUSED|refused|fetch failed/i);
      b.kill("SIGTERM");
      const code = await new Promise((res) => b.once("exit", (c) => res(c)));
      expect(code).toBe(0);
      // With PostgreSQL state no process wrote a state file, and the workers had no queue file either.
      expect(existsSync(join(workerDir, "stats.db"))).toBe(stateEngine === "sqlite");
      if (stateEngine === "postgres") expect(readdirSync(workerDir).filter((n) => n.endsWith(".db"))).toEqual([]);
    }, 240_000);
  });
}
