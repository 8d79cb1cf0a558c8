// SQS -> `geowatch run` -> SQS against the moto server (bash .ci/servers/moto.sh start): two processes
// sharing a queue with one SIGKILLed, and the endpoint cut for 10 s through a TCP proxy. One file, so the
// two never compete for the 2 cores.
import { seededRandom, startTcpProxy, testSeed } from "@geowatch/testkit";
import { afterAll, describe, expect, it } from "vitest";
import { sleep, startRun, stopRun, tempDir, unique, until, writeConfig, type RunChild } from "./helpers.js";
import { createQueue, deleteQueue, drainIds, motoEndpoint, queueCounts, sendIds, tally } from "./sqs-peer.js";

const queues: string[] = [];
const children: RunChild[] = [];

afterAll(async () => {
  for (const c of children) if (c.proc.exitCode === null && c.proc.signalCode === null) c.proc.kill("SIGKILL");
  for (const q of queues) await deleteQueue(q);
});

/** SQS messages held per process (received, not yet deleted): the bound on what a kill can duplicate. */
const HELD = 200;
const VISIBILITY_S = 5;

function relayConfig(dir: string, input: string, output: string, inEndpoint: string, outEndpoint: string): string {
  return writeConfig(dir, [
    "brokers:",
    "  - name: relay",
    "    count: 50",
    "    sleep_period: 0.2",
    "    consumers:",
    `      - { name: in, backend: sqs, queue: ${input}, endpoint: "${inEndpoint}", region: us-east-1, codec: json, wait_time_seconds: 1, visibility_timeout_seconds: ${VISIBILITY_S}, max_in_flight: ${HELD}, request_timeout_ms: 2000, max_attempts: 2 }`,
    "    producers:",
    `      - { name: out, backend: sqs, queue: ${output}, endpoint: "${outEndpoint}", region: us-east-1, codec: json, request_timeout_ms: 2000, max_attempts: 2 }`,
  ]);
}

async function queuesFor(tag: string): Promise<{ input: string; output: string; inUrl: string; outUrl: string }> {
  const input = unique(`${tag}-in`);
  const output = unique(`${tag}-out`);
  const inUrl = await createQueue(input);
  const outUrl = await createQueue(output);
  queues.push(inUrl, outUrl);
  return { input, output, inUrl, outUrl };
}

const sent = async (c: RunChild) => (await c.metric("geowatch_sent_total")) ?? 0;

describe("sqs system", () => {
  it("scale-out: two processes share a queue, one is SIGKILLed mid-flow; nothing lost, duplicates bounded by what it held", async () => {
    const endpoint = motoEndpoint();
    const seed = testSeed("sqs scale-out");
    const rand = seededRandom(seed);
    const N = 600;
    const { input, output, inUrl, outUrl } = await queuesFor("scale");
    await sendIds(inUrl, 0, N / 2);
    const cfg = relayConfig(tempDir("sqs-scale"), input, output, endpoint, endpoint);
    const a = await startRun(cfg);
    const b = await startRun(cfg);
    children.push(a, b);
    const producing = sendIds(inUrl, N / 2, N, 2);
    // The kill lands somewhere between 10% and 50% of the input delivered, by both together, after each delivered some.
    const killAt = Math.floor(N * (0.1 + 0.4 * rand()));
    await until(
      `both processes to deliver and ${killAt} in total`,
      async () => {
        const [sa, sb] = [await sent(a), await sent(b)];
        return sa > 0 && sb > 0 && sa + sb >= killAt ? true : undefined;
      },
      120_000,
      25,
    );
    const [sentA, sentB] = [await sent(a), await sent(b)];
    a.proc.kill("SIGKILL");
    expect(await a.exited).toBe(null);
    const atKill = await queueCounts(inUrl);
    console.log(`[sqs scale-out] SIGKILL A (pid ${a.pid}) at ${sentA + sentB} delivered (target ${killAt}): A sent ${sentA}, B sent ${sentB}; input queue ${JSON.stringify(atKill)}`);
    expect(sentA + sentB, "the kill landed mid-flow").toBeLessThan(N);
    await producing;
    // A's held messages come back after the visibility timeout and B relays them.
    await until("the input queue to be empty", async () => {
      const c = await queueCounts(inUrl);
      return c.visible === 0 && c.inFlight === 0 ? true : undefined;
    }, 180_000, 500);
    expect(await stopRun(b)).toBe(0);
    const ids = await drainIds(outUrl);
    const t = tally(ids, N);
    console.log(`[sqs scale-out] seed ${seed}: input ${N}, output ${ids.length}, distinct ${t.distinct}, missing ${t.missing.length}, duplicates ${t.duplicates} (bound ${HELD}: the messages one process holds)`);
    expect(t.foreign).toBe(0);
    expect(t.missing.slice(0, 20)).toEqual([]);
    expect(t.duplicates).toBeLessThanOrEqual(HELD);
  }, 300_000);

  it("fault: the endpoint is unreachable for 10 s mid-flow; nothing lost, /ready answers 503 during the cut", async () => {
    const endpoint = new URL(motoEndpoint());
    const N = 500;
    const CUT_MS = 10_000;
    const { input, output, inUrl, outUrl } = await queuesFor("fault");
    const proxy = await startTcpProxy({ targetHost: endpoint.hostname, targetPort: Number(endpoint.port) });
    try {
      const via = `http://${proxy.address}`;
      const run = await startRun(relayConfig(tempDir("sqs-fault"), input, output, via, via));
      children.push(run);
      await until("the run to be ready", async () => ((await run.ready())?.status === 200 ? true : undefined), 60_000);
      // A paced producer (straight to the server) that keeps sending through the cut.
      const producing = (async () => {
        for (let i = 0; i < N; i += 20) {
          await sendIds(inUrl, i, Math.min(N, i + 20), 2);
          await sleep(300);
        }
      })();
      await until("a fifth of the input to be delivered", async () => ((await sent(run)) >= N / 5 ? true : undefined), 60_000, 50);
      const t0 = Date.now();
      proxy.cut();
      const samples: Array<{ at: number; status: number | string; notReady?: string }> = [];
      let sampling = true;
      const sampler = (async () => {
        while (sampling) {
          const r = await run.ready();
          const bad = r?.body.nodes.filter((n) => n.state !== "ready").map((n) => `${n.node}:${n.state}`);
          samples.push({ at: Date.now() - t0, status: r?.status ?? "unreachable", ...(bad?.length ? { notReady: bad.join("; ") } : {}) });
          await sleep(250);
        }
      })();
      await sleep(CUT_MS);
      const sentAtRestore = await sent(run);
      proxy.restore();
      const during = samples.filter((s) => s.at < CUT_MS);
      await producing;
      await until("the input queue to be empty", async () => {
        const c = await queueCounts(inUrl);
        return c.visible === 0 && c.inFlight === 0 ? true : undefined;
      }, 120_000, 500);
      await until("/ready to answer 200 again", async () => ((await run.ready())?.status === 200 ? true : undefined), 60_000);
      sampling = false;
      await sampler;
      expect(await stopRun(run)).toBe(0);
      const ids = await drainIds(outUrl);
      const t = tally(ids, N);
      const notReady = during.filter((s) => s.status === 503);
      const firstNotReady = notReady[0]?.at;
      const readyAgain = samples.find((s) => s.at >= CUT_MS && s.status === 200)?.at;
      console.log(
        `[sqs fault] cut ${CUT_MS} ms after ${sentAtRestore} delivered; /ready 503 in ${notReady.length} of ${during.length} samples during the cut (first at ${firstNotReady} ms: ${notReady[0]?.notReady}), 200 again at ${readyAgain} ms; ` +
          `input ${N}, output ${ids.length}, distinct ${t.distinct}, missing ${t.missing.length}, duplicates ${t.duplicates}`,
      );
      expect(t.foreign).toBe(0);
      expect(t.missing.slice(0, 20)).toEqual([]);
      expect(notReady.length, "/ready answers 503 during the cut").toBeGreaterThan(0);
      expect(firstNotReady!, "the cut shows in /ready within 5 s").toBeLessThan(5000);
    } finally {
      await proxy.close();
    }
  }, 300_000);
});
