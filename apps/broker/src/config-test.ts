import { isDeepStrictEqual } from "node:util";
import { ConfigError, defineBackend, namedMemoryChannel, payloadText, type Runtime, type Store } from "@geowatch/core";
import { z } from "zod";
import { loadConfigFile } from "./load.js";

/**
 * `geowatch test`: config unit tests without real servers. Every consumer of the broker under test is
 * swapped for an in-process channel fed with the test's input, every producer, output store and the
 * dead-letter sink for a capture; codecs, filters and stages stay real.
 *
 * tests.yaml:
 *   tests:
 *     - name: enter events reach the alerts sink
 *       broker: positions
 *       input: ['{"type":"Feature",...}', {type: Feature, ...}]   # strings are raw payloads
 *       expect:
 *         alerts: { count: 1, contains: [{ metadata: { actiontype: enter } }] }
 *         dead-letter: { count: 0 }
 */
interface Expectation {
  count?: number;
  contains?: unknown[];
  values?: unknown[];
}
interface TestCase {
  name: string;
  broker?: string;
  input: unknown[];
  expect: Record<string, Expectation>;
}

const CAPTURE = "geowatch-test-capture";

export async function runConfigTests(configPath: string, testsPath: string, makeRuntime: (p: string) => Runtime): Promise<number> {
  const config = loadConfigFile(configPath) as { brokers?: Array<Record<string, unknown>> } & Record<string, unknown>;
  const suite = loadConfigFile(testsPath) as { tests?: TestCase[] };
  if (!Array.isArray(suite?.tests) || suite.tests.length === 0) {
    throw new ConfigError([{ path: "tests", message: "expected a non-empty list of tests" }], testsPath);
  }
  let passed = 0;
  let failed = 0;
  for (const [i, t] of suite.tests.entries()) {
    const problems = await runOne(config, t, i, configPath, makeRuntime);
    if (problems.length === 0) {
      passed++;
      process.stdout.write(`ok   ${t.name}\n`);
    } else {
      failed++;
      process.stdout.write(`FAIL ${t.name}\n${problems.map((p) => `     ${p}`).join("\n")}\n`);
    }
  }
  process.stdout.write(`${passed} passed, ${failed} failed\n`);
  return failed > 0 ? 1 : 0;
}

async function runOne(
  config: { brokers?: Array<Record<string, unknown>> } & Record<string, unknown>,
  t: TestCase,
  index: number,
  configPath: string,
  makeRuntime: (p: string) => Runtime,
): Promise<string[]> {
  const brokers = config.brokers ?? [];
  const target = t.broker ? brokers.find((b) => b.name === t.broker) : brokers.find((b) => b.enabled !== false);
  if (!target) return [`tests[${index}].broker: no broker named "${t.broker}" in ${configPath}`];
  const topic = `geowatch-test-${index}-${Date.now()}`;
  const captured = new Map<string, unknown[]>();
  const capture = (name: string) => {
    let list = captured.get(name);
    if (!list) captured.set(name, (list = []));
    return list;
  };
  const captureBackend = defineBackend({
    name: CAPTURE,
    description: "captures what a sink would get (geowatch test)",
    producer: {
      options: z.strictObject({}),
      create: (_o, ctx) => ({
        async send(records) {
          for (const r of records) capture(ctx.name).push(parse(payloadText(r.value)));
          return records.map(() => ({ ok: true as const }));
        },
      }),
    },
    store: {
      options: z.strictObject({}),
      create: (_o, ctx): Store => ({
        capabilities: { append: true, read: false },
        async write(op) {
          capture(ctx.name).push(parse(payloadText(op.body)));
        },
      }),
    },
  });
  const swapNode = (n: Record<string, unknown>, i: number, role: string) => ({
    name: n.name ?? `${String(n.backend)}-${role}-${i}`,
    backend: CAPTURE,
    ...(n.codec !== undefined ? { codec: n.codec } : {}),
  });
  const consumers = (target.consumers as Array<Record<string, unknown>> | undefined) ?? [];
  const first = consumers.find((c) => c.enabled !== false);
  const broker = {
    ...target,
    enabled: true,
    consumers: [{ name: first?.name ?? "input", backend: "memory", topic, ...(first?.codec !== undefined ? { codec: first.codec } : {}) }],
    stores_in: [],
    producers: ((target.producers as Array<Record<string, unknown>> | undefined) ?? []).map((n, i) => swapNode(n, i, "producer")),
    stores_out: ((target.stores_out as Array<Record<string, unknown>> | undefined) ?? []).map((s, i) => ({
      ...swapNode(s, i, "store-out"),
      key: s.key,
      ...(s.which ? { which: s.which } : {}),
      mode: "snapshot",
    })),
    dead_letter: { name: "dead-letter", backend: CAPTURE },
  };
  const rt = makeRuntime(configPath).register(captureBackend);
  const app = await rt.load({ ...config, brokers: [broker] }, configPath);
  await namedMemoryChannel(topic)
    .producer()
    .send((t.input ?? []).map((v) => ({ value: typeof v === "string" ? v : JSON.stringify(v) })));
  await app.run({ untilIdle: true });
  await app.stop();

  const problems: string[] = [];
  for (const [sink, e] of Object.entries(t.expect ?? {})) {
    const got = (captured.get(sink) ?? []).flatMap((v) => (isCollection(v) ? v.features : [v]));
    if (e.count !== undefined && got.length !== e.count) problems.push(`${sink}: expected ${e.count} message(s), got ${got.length}`);
    if (e.values !== undefined && !isDeepStrictEqual(got, e.values)) problems.push(`${sink}: expected exactly ${JSON.stringify(e.values)}, got ${JSON.stringify(got)}`);
    for (const want of e.contains ?? []) {
      if (!got.some((g) => matches(g, want))) problems.push(`${sink}: no message matches ${JSON.stringify(want)} (got ${JSON.stringify(got).slice(0, 400)})`);
    }
  }
  // A message that went to the dead-letter sink instead says why it did not arrive.
  const dead = captured.get("dead-letter") ?? [];
  if (problems.length > 0 && dead.length > 0 && t.expect?.["dead-letter"] === undefined) {
    const reasons = [...new Set(dead.map((d) => String((d as { reason?: unknown }).reason ?? JSON.stringify(d))))];
    problems.push(`dead-letter got ${dead.length} message(s): ${reasons.slice(0, 5).join("; ")}`);
  }
  return problems;
}

function parse(text: string): unknown {
  try {
    return JSON.parse(text) as unknown;
  } catch {
    return text;
  }
}

function isCollection(v: unknown): v is { features: unknown[] } {
  return v !== null && typeof v === "object" && (v as { type?: unknown }).type === "FeatureCollection" && Array.isArray((v as { features?: unknown }).features);
}

/** Partial deep match: every key in `want` must match in `got`. */
function matches(got: unknown, want: unknown): boolean {
  if (want === null || typeof want !== "object") return isDeepStrictEqual(got, want);
  if (got === null || typeof got !== "object") return false;
  if (Array.isArray(want)) return Array.isArray(got) && want.every((w, i) => matches(got[i], w));
  return Object.entries(want).every(([k, w]) => matches((got as Record<string, unknown>)[k], w));
}
