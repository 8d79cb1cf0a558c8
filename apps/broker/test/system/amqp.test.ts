// AMQP -> `geowatch run` -> AMQP against the real RabbitMQ (bash .ci/servers/rabbitmq.sh start), with a
// broker restart in the middle of the flow.
import { connect, type ChannelModel, type ConfirmChannel } from "amqplib";
import { afterAll, describe, expect, it } from "vitest";
import { RABBITMQ_SH, requireServer, runScript, sleep, startRun, stopRun, tempDir, unique, until, writeConfig, type RunChild } from "./helpers.js";

const children: RunChild[] = [];
const cleanup: Array<() => Promise<void>> = [];
afterAll(async () => {
  for (const c of children) if (c.proc.exitCode === null && c.proc.signalCode === null) c.proc.kill("SIGKILL");
  for (const f of cleanup) await f().catch(() => undefined);
});

async function open(): Promise<ChannelModel> {
  const url = requireServer("GEOWATCH_AMQP_URL");
  try {
    const c = await connect(url);
    c.on("error", () => {});
    return c;
  } catch (err) {
    throw new Error(`cannot reach RabbitMQ at GEOWATCH_AMQP_URL (${(err as Error).message}); start it: bash .ci/servers/rabbitmq.sh start`);
  }
}

async function withChannel<T>(fn: (ch: Awaited<ReturnType<ChannelModel["createChannel"]>>) => Promise<T>): Promise<T> {
  const c = await open();
  try {
    const ch = await c.createChannel();
    ch.on("error", () => {});
    return await fn(ch);
  } finally {
    await c.close().catch(() => undefined);
  }
}

/**
 * Publishes ids [0, n) to `queue` with confirms, in paced batches, through a broker restart: a batch whose
 * confirms fail is published again on a new connection. Returns how many batches were published again.
 */
async function publishThrough(queue: string, n: number, batch: number, paceMs: number, onProgress: (k: number) => void): Promise<number> {
  let conn: ChannelModel | undefined;
  let ch: ConfirmChannel | undefined;
  let again = 0;
  const pad = "x".repeat(60);
  for (let i = 0; i < n; i += batch) {
    for (;;) {
      try {
        if (!ch) {
          conn = await open();
          ch = await conn.createConfirmChannel();
          ch.on("error", () => {});
        }
        for (let j = i; j < Math.min(n, i + batch); j++) ch.sendToQueue(queue, Buffer.from(`{"id":${j},"pad":"${pad}"}`), { persistent: true, contentType: "application/json" });
        await ch.waitForConfirms();
        break;
      } catch {
        again++;
        await conn?.close().catch(() => undefined);
        conn = undefined;
        ch = undefined;
        await sleep(500);
      }
    }
    onProgress(Math.min(n, i + batch));
    await sleep(paceMs);
  }
  await conn?.close().catch(() => undefined);
  return again;
}

async function queueDepth(queue: string): Promise<number> {
  return withChannel(async (ch) => (await ch.checkQueue(queue)).messageCount);
}

/** Takes every message off `queue` and returns their ids. */
async function drainIds(queue: string, expectAtLeast: number, timeoutMs = 60_000): Promise<number[]> {
  const conn = await open();
  const ids: number[] = [];
  try {
    const ch = await conn.createChannel();
    await ch.prefetch(1000);
    const total = (await ch.checkQueue(queue)).messageCount;
    await ch.consume(queue, (m) => {
      if (!m) return;
      ids.push((JSON.parse(m.content.toString("utf8")) as { id: number }).id);
      ch.ack(m);
    });
    const deadline = Date.now() + timeoutMs;
    while (ids.length < Math.max(total, expectAtLeast) && Date.now() < deadline) await sleep(100);
    await sleep(300);
  } finally {
    await conn.close().catch(() => undefined);
  }
  return ids;
}

describe("amqp system", () => {
  it("fault: RabbitMQ restarted mid-flow under geowatch run; nothing lost, the reconnect shows in the logs and /ready", async () => {
    requireServer("GEOWATCH_AMQP_URL");
    const N = 10_000;
    const qin = unique("in");
    const qout = unique("out");
    const xout = unique("x-out");
    await withChannel(async (ch) => {
      await ch.assertQueue(qin, { durable: true });
      await ch.assertExchange(xout, "topic", { durable: true });
      await ch.assertQueue(qout, { durable: true });
      await ch.bindQueue(qout, xout, "#");
    });
    cleanup.push(() =>
      withChannel(async (ch) => {
        await ch.deleteQueue(qin);
        await ch.deleteQueue(qout);
        await ch.deleteExchange(xout);
      }),
    );
    const cfg = writeConfig(tempDir("amqp-fault"), [
      "defaults:",
      '  amqp: { url: "${GEOWATCH_AMQP_URL}" }',
      "brokers:",
      "  - name: relay",
      "    count: 100",
      "    max_in_flight: 1000",
      "    sleep_period: 0.2",
      // Default max_tries: a down sink is retried for as long as the outage lasts, never dead-lettered.
      `    consumers: [{ name: in, backend: amqp, queue: ${qin}, prefetch: 200, reconnect_max_ms: 1000, codec: json }]`,
      `    producers: [{ name: out, backend: amqp, exchange: ${xout}, routing_key: relayed, codec: json }]`,
    ]);
    const run = await startRun(cfg);
    children.push(run);
    await until("the run to be ready", async () => ((await run.ready())?.status === 200 ? true : undefined), 60_000);

    let produced = 0;
    const producing = publishThrough(qin, N, 100, 50, (k) => (produced = k));
    await until("a quarter of the input to be delivered", async () => (((await run.metric("geowatch_sent_total")) ?? 0) >= N / 4 ? true : undefined), 60_000, 50);
    const sentBefore = (await run.metric("geowatch_sent_total")) ?? 0;
    const logsBefore = run.logs().length;
    const t0 = Date.now();
    const restart = runScript(RABBITMQ_SH, ["restart"]);
    let done = false;
    const samples: Array<{ at: number; status: number | string; notReady?: string }> = [];
    const sampling = (async () => {
      while (!done) {
        const r = await run.ready();
        const bad = r?.body.nodes.filter((n) => n.state !== "ready" || n.error).map((n) => `${n.node}:${n.state}${n.error ? ` (${n.error.slice(0, 100)})` : ""}`);
        samples.push({ at: Date.now() - t0, status: r?.status ?? "unreachable", ...(bad?.length ? { notReady: bad.join("; ") } : {}) });
        await sleep(100);
      }
    })();
    const restarted = await restart;
    expect(restarted.code, restarted.output).toBe(0);
    const upAt = Date.now() - t0;
    const producedAtUp = produced;
    const republished = await producing;

    // Done when the input queue is empty and everything received was acknowledged, twice in a row.
    let calm = 0;
    await until(
      "the run to drain the input queue",
      async () => {
        const [depth, rec, acked] = [await queueDepth(qin), await run.metric("geowatch_received_total"), await run.metric("geowatch_acked_total")];
        calm = depth === 0 && rec !== undefined && rec === acked ? calm + 1 : 0;
        return calm >= 3 ? true : undefined;
      },
      120_000,
      500,
    );
    await until("/ready to answer 200 again", async () => ((await run.ready())?.status === 200 ? true : undefined), 60_000);
    const readyAgainAt = samples.findLast((x) => x.status !== 200)?.at;
    done = true;
    await sampling;
    const outage = run.logs().slice(logsBefore);
    expect(await stopRun(run)).toBe(0);
    expect(await queueDepth(qin)).toBe(0);

    const ids = await drainIds(qout, N);
    const seen = new Uint32Array(N);
    for (const id of ids) seen[id]!++;
    const missing = [...seen.keys()].filter((i) => seen[i] === 0);
    const duplicates = ids.length - (N - missing.length);
    const notReady = samples.filter((s) => s.status !== 200);
    const reconnectLogs = outage.filter((l) => /reconnect/i.test(String(l.msg)));
    const msgs = [...new Set(outage.map((l) => `${l.level} ${String(l.msg).slice(0, 90)}`))];
    console.log(
      `[amqp fault] ${N} published (${republished} batches of 100 published again by the test publisher, ${producedAtUp} published when RabbitMQ was back), ` +
        `${sentBefore} delivered before the restart; rabbitmq.sh restart took ${upAt} ms; ` +
        `/ready: ${notReady.length} of ${samples.length} samples not 200, last at ${readyAgainAt} ms (first ${JSON.stringify(notReady[0])}, last ${JSON.stringify(notReady.at(-1))}); ` +
        `output ${ids.length}, missing ${missing.length}, duplicates ${duplicates}`,
    );
    console.log(`[amqp fault] log messages after the restart began:\n  ${msgs.slice(0, 40).join("\n  ")}`);
    expect(missing.slice(0, 20)).toEqual([]);
    // Readiness sees the outage (the backends' health hooks: the node is "reconnecting"), and so do the logs.
    expect(notReady.length).toBeGreaterThan(0);
    expect(notReady.some((s) => s.notReady?.includes("reconnecting"))).toBe(true);
    expect(reconnectLogs.length).toBeGreaterThan(0);
  }, 300_000);
});
