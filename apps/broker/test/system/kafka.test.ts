// Kafka -> `geowatch run` -> Kafka against the real server (bash .ci/servers/kafka.sh start).
// One file, so the fault test's broker restart never overlaps the scale-out test.
import { afterAll, describe, expect, it } from "vitest";
import { KAFKA_SH, requireServer, runScript, sleep, startRun, stopRun, tempDir, unique, until, writeConfig, type RunChild } from "./helpers.js";
import { committed, createTopics, deleteTopics, endOffsets, produce, produceThrough, readAllIds, tally } from "./kafka-peer.js";

const COUNT = 100; // records per receive
const MAX_IN_FLIGHT = 1000;
const topics: string[] = [];
const children: RunChild[] = [];

afterAll(async () => {
  for (const c of children) if (c.proc.exitCode === null && c.proc.signalCode === null) c.proc.kill("SIGKILL");
  if (process.env.GEOWATCH_KAFKA_BROKERS) await deleteTopics(topics);
});

function kafkaConfig(dir: string, input: string, output: string, group: string, extra: string[] = []): string {
  return writeConfig(dir, [
    "defaults:",
    '  kafka: { brokers: "${GEOWATCH_KAFKA_BROKERS}" }',
    "brokers:",
    "  - name: relay",
    `    count: ${COUNT}`,
    `    max_in_flight: ${MAX_IN_FLIGHT}`,
    "    sleep_period: 0.2",
    ...extra,
    `    consumers: [{ name: in, backend: kafka, topic: ${input}, group_id: ${group}, from_beginning: true, codec: json }]`,
    `    producers: [{ name: out, backend: kafka, topic: ${output}, codec: json }]`,
  ]);
}

const joins = (c: RunChild) => c.logs().filter((l) => l.msg === "kafka: joined group");
const owned = (c: RunChild) => (joins(c).at(-1)?.partitions as string[] | undefined) ?? [];

describe("kafka system", () => {
  it("scale-out: two processes share a group, one is SIGKILLed, the other takes over its partitions; nothing lost", async () => {
    requireServer("GEOWATCH_KAFKA_BROKERS");
    const N = 30_000;
    const input = unique("scale-in");
    const output = unique("scale-out");
    const group = unique("scale-group");
    topics.push(input, output);
    await createTopics([input, output], 6);
    const cfg = kafkaConfig(tempDir("kafka-scale"), input, output, group);

    // Both members join before any data exists, so both work on the stream at once.
    const a = await startRun(cfg);
    children.push(a);
    await until("process A to own partitions", () => (owned(a).length === 6 ? true : undefined), 60_000);
    const b = await startRun(cfg);
    children.push(b);
    await until("the group to split between A and B", () => (owned(a).length > 0 && owned(b).length > 0 && owned(a).length + owned(b).length === 6 ? true : undefined), 90_000);
    console.log(`[kafka scale-out] A owns ${owned(a).join(",")}; B owns ${owned(b).join(",")}`);

    const t0 = Date.now();
    const producing = produce(input, 0, N, { batch: 1000, paceMs: 20 });
    // Kill A once both have delivered a good part (10% of the input each) and A's partitions still have work.
    await until(
      "both processes to deliver",
      async () => ((await a.metric("geowatch_sent_total")) ?? 0) >= N / 10 && ((await b.metric("geowatch_sent_total")) ?? 0) >= N / 10 ? true : undefined,
      60_000,
      25,
    );
    const sentA = (await a.metric("geowatch_sent_total")) ?? 0;
    const sentB = (await b.metric("geowatch_sent_total")) ?? 0;
    const aPartitions = owned(a);
    a.proc.kill("SIGKILL");
    expect(await a.exited).toBe(null);
    const committedAtKill = await committed(group, input);
    console.log(`[kafka scale-out] SIGKILL A (pid ${a.pid}) after ${Date.now() - t0} ms: A sent ${sentA}, B sent ${sentB}, group committed ${committedAtKill} of ${N}`);
    expect(committedAtKill).toBeLessThan(N); // the kill really landed mid-stream
    await producing;

    // B takes over A's partitions once the coordinator expires A's session (kafkajs default 30 s), then finishes.
    await until("B to own all 6 partitions", () => (owned(b).length === 6 ? true : undefined), 90_000, 250);
    const tookOver = Date.now();
    await until("the group to commit every input offset", async () => ((await committed(group, input)) === N ? true : undefined), 120_000, 500);
    console.log(`[kafka scale-out] B owns all 6 partitions (took over ${aPartitions.join(",")}) ${tookOver - t0} ms after the first record; all committed ${Date.now() - t0} ms after`);
    expect(await stopRun(b)).toBe(0);

    const ids = await readAllIds(output);
    const t = tally(ids, N);
    // Duplicate bound. A record is re-delivered only when it reached the output but its offset was not
    // committed by the member that owned its partition when the partition moved. The broker receives only
    // while fewer than max_in_flight records are unacknowledged, one batch (count) at a time, and commits a
    // batch's offsets before counting it as acknowledged; so at any moment the delivered-but-uncommitted tail
    // of one process is < max_in_flight + count. Partitions move (1) on each SIGKILL, and (2) on each group
    // join after a member's first (a rebalance revokes partitions; records of a revoked partition still in
    // flight cannot be committed, and commits dropped while the group rebalances leave at most what was in
    // flight when it began, since no records are handed out during a rebalance). Hence:
    //   duplicates <= (kills + later joins) * (max_in_flight + count)
    const laterJoins = joins(a).length - 1 + joins(b).length - 1;
    const bound = (1 + laterJoins) * (MAX_IN_FLIGHT + COUNT);
    console.log(
      `[kafka scale-out] produced ${N}, output ${ids.length}, distinct ${t.distinct}, missing ${t.missing.length}, duplicates ${t.duplicates} (bound ${bound} = (1 kill + ${laterJoins} later joins) x (${MAX_IN_FLIGHT} + ${COUNT}))`,
    );
    expect(t.foreign).toBe(0);
    expect(t.missing.slice(0, 20)).toEqual([]);
    expect(t.duplicates).toBeLessThanOrEqual(bound);
    expect(await endOffsets(input)).toBe(N);
  }, 300_000);

  it("fault: Kafka stopped and started again mid-flow; nothing lost, the outage shows in /ready and the logs", async () => {
    requireServer("GEOWATCH_KAFKA_BROKERS");
    const N = 20_000;
    const DOWN_S = 5;
    const input = unique("fault-in");
    const output = unique("fault-out");
    const group = unique("fault-group");
    topics.push(input, output);
    await createTopics([input, output], 3);
    // Default max_tries (5), no dead_letter sink: an outage longer than the retries must not dead-letter or
    // acknowledge anything. (Before the broker told a down sink from a failing record, a run of this test lost
    // 65 messages: the in-flight batches were given up, logged as dead letters and their offsets committed.)
    const cfg = kafkaConfig(tempDir("kafka-fault"), input, output, group, []);
    const run = await startRun(cfg);
    children.push(run);
    await until("the run to be ready", async () => ((await run.ready())?.status === 200 ? true : undefined), 60_000);

    // A paced producer that rides through the outage (a failed batch is sent again), so the stop lands mid-flow.
    let produced = 0;
    const producing = produceThrough(input, N, { batch: 200, paceMs: 100, onProgress: (k) => (produced = k) });
    await until("a quarter of the input to be delivered", async () => (((await run.metric("geowatch_sent_total")) ?? 0) >= N / 4 ? true : undefined), 60_000, 50);
    const sentBefore = (await run.metric("geowatch_sent_total")) ?? 0;
    const logsBefore = run.logs().length;
    const t0 = Date.now();
    const restart = runScript(KAFKA_SH, ["restart", String(DOWN_S)]);
    let done = false;
    const samples: Array<{ at: number; status: number | string; notReady?: string }> = [];
    const sampling = (async () => {
      while (!done) {
        const r = await run.ready();
        const bad = r?.body.nodes.filter((n) => n.state !== "ready" || n.error).map((n) => `${n.node}:${n.state}${n.error ? ` (${n.error.slice(0, 100)})` : ""}`);
        samples.push({ at: Date.now() - t0, status: r?.status ?? "unreachable", ...(bad?.length ? { notReady: bad.join("; ") } : {}) });
        await sleep(250);
      }
    })();
    const restarted = await restart;
    expect(restarted.code, restarted.output).toBe(0);
    const upAt = Date.now() - t0;
    const producedAtUp = produced;
    const peerFailures = await producing;
    await until("the group to commit every input offset", async () => ((await committed(group, input)) === (await endOffsets(input)) ? true : undefined), 180_000, 500);
    await until("/ready to answer 200 again", async () => ((await run.ready())?.status === 200 ? true : undefined), 60_000);
    const readyAgainAt = samples.findLast((x) => x.status !== 200)?.at;
    done = true;
    await sampling;
    const outage = run.logs().slice(logsBefore);
    expect(await stopRun(run)).toBe(0);

    const inputIds = tally(await readAllIds(input), N);
    const ids = await readAllIds(output);
    const t = tally(ids, N);
    const rejoinedAt = outage.filter((l) => l.msg === "kafka: joined group").map((l) => Date.parse(String(l.time)) - t0);
    const notReady = samples.filter((s) => s.status !== 200);
    const reconnectLogs = outage.filter((l) => /reconnect|crash|connect failed|retrying sink|disconnect|lost/i.test(String(l.msg)));
    const msgs = [...new Set(outage.map((l) => `${l.level} ${String(l.msg).slice(0, 90)}`))];
    console.log(
      `[kafka fault] ${N} produced, ${sentBefore} delivered before the outage; kafka.sh restart ${DOWN_S} took ${upAt} ms; the consumer rejoined its group at ${rejoinedAt.join(", ")} ms (the coordinator waits for the session of the member that vanished); ` +
        `/ready: ${notReady.length} of ${samples.length} samples not 200, last at ${readyAgainAt} ms (first ${JSON.stringify(notReady[0])}, last ${JSON.stringify(notReady.at(-1))}); ` +
        `input: ${N} ids, ${inputIds.duplicates} written twice by the test producer's ${peerFailures} failed sends (${producedAtUp} produced when Kafka was back); ` +
        `output ${ids.length}, distinct ${t.distinct}, missing ${t.missing.length}, duplicates ${t.duplicates} (${t.duplicates - inputIds.duplicates} beyond the input's)`,
    );
    console.log(`[kafka fault] log messages during the outage:\n  ${msgs.slice(0, 40).join("\n  ")}`);
    expect(inputIds.missing).toEqual([]);
    expect(t.foreign).toBe(0);
    expect(t.missing.slice(0, 20)).toEqual([]);
    // Readiness sees the outage (the backends' health hooks: the node is "reconnecting"), and so do the logs.
    expect(notReady.length).toBeGreaterThan(0);
    expect(notReady.some((s) => s.notReady?.includes("reconnecting"))).toBe(true);
    expect(reconnectLogs.length).toBeGreaterThan(0);
  }, 400_000);
});
