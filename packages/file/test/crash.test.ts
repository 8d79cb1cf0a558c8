import { spawn, execFileSync } from "node:child_process";
import type { ChildProcess } from "node:child_process";
import { mkdtemp, readFile, rm, stat } from "node:fs/promises";
import { tmpdir } from "node:os";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";
import { createRequire } from "node:module";
import { afterAll, beforeAll, expect, it } from "vitest";
import { seededRandom, testSeed } from "@geowatch/testkit";
import { fileProducer } from "../src/index.js";

const pkg = join(dirname(fileURLToPath(import.meta.url)), "..");
const relay = join(pkg, "test", "fixtures", "relay.mjs");
const LINES = 20_000;
const KILLS = 3;
let dir: string;

beforeAll(async () => {
  // The child runs the built package, so build it first (tsup via its own bin, no pnpm needed).
  const tsup = join(dirname(createRequire(join(pkg, "package.json")).resolve("tsup")), "cli-default.js");
  execFileSync(process.execPath, [tsup], {
    cwd: pkg,
    stdio: "pipe",
  });
  dir = await mkdtemp(join(tmpdir(), "gw-file-crash-"));
});
afterAll(async () => {
  await rm(dir, { recursive: true, force: true });
});

function start(input: string, output: string, commitIntervalMs: number): { child: ChildProcess; exited: Promise<number | null> } {
  const child = spawn(process.execPath, [relay, input, output, String(commitIntervalMs)], { stdio: ["ignore", "ignore", "pipe"] });
  let err = "";
  child.stderr?.on("data", (d: Buffer) => (err += d.toString()));
  const exited = new Promise<number | null>((done) =>
    child.on("exit", (code, sig) => {
      if (code !== 0 && sig !== "SIGKILL") console.error(`relay exited ${code}: ${err}`);
      done(code);
    }),
  );
  return { child, exited };
}

async function sizeOf(path: string): Promise<number> {
  return (await stat(path).catch(() => ({ size: 0 }))).size;
}

// 0: every commit written before it returns; 200: the offset file written at most every 200 ms (more replayed, nothing lost).
it.each([0, 200])(`loses no acknowledged line when the relay is SIGKILLed ${KILLS} times mid-stream (commitIntervalMs %i)`, async (commitIntervalMs) => {
  const input = join(dir, `in-${commitIntervalMs}.ndjson`);
  const output = join(dir, `out-${commitIntervalMs}.ndjson`);
  const line = (n: number) => `{"n":${n}}`;
  const expectedBytes = Array.from({ length: LINES }, (_, i) => line(i).length + 1).reduce((a, b) => a + b, 0);

  // Half the input is there before the relay starts; the rest arrives while it runs (and is killed).
  const producer = fileProducer({ path: input });
  await producer.send(Array.from({ length: LINES / 2 }, (_, i) => ({ value: line(i) })));
  const feeding = (async () => {
    for (let i = LINES / 2; i < LINES; i += 500) {
      await producer.send(Array.from({ length: 500 }, (_, k) => ({ value: line(i + k) })));
      await new Promise((r) => setTimeout(r, 20));
    }
    await producer.send([{ value: '{"end":true}' }]);
    await producer.close?.();
  })();

  const random = seededRandom(testSeed(commitIntervalMs === 0 ? "file crash" : `file crash ${commitIntervalMs}`));
  // Kill at seeded random points of progress, each later than the last, all before the end.
  const marks = Array.from({ length: KILLS }, (_, i) => (i + 0.2 + random() * 0.6) / (KILLS + 1)).sort();
  const killedAt: number[] = [];
  for (const mark of marks) {
    const { child, exited } = start(input, output, commitIntervalMs);
    while ((await sizeOf(output)) < mark * expectedBytes && child.exitCode === null) {
      await new Promise((r) => setTimeout(r, 2));
    }
    expect(child.exitCode, "relay finished before it could be killed").toBeNull();
    killedAt.push(await sizeOf(output));
    child.kill("SIGKILL");
    await exited;
  }
  await feeding;
  const { exited } = start(input, output, commitIntervalMs);
  expect(await exited).toBe(0);

  const seen = new Map<number, number>();
  for (const l of (await readFile(output, "utf8")).split("\n")) {
    if (l === "" || l === '{"end":true}') continue;
    const n = (JSON.parse(l) as { n: number }).n;
    seen.set(n, (seen.get(n) ?? 0) + 1);
  }
  const missing = Array.from({ length: LINES }, (_, i) => i).filter((i) => !seen.has(i));
  const duplicates = [...seen.values()].reduce((a, c) => a + c - 1, 0);
  console.log(`crash test (commitIntervalMs ${commitIntervalMs}): ${LINES} lines, killed at output bytes ${killedAt.join(", ")}; ` +
    `${missing.length} missing, ${duplicates} duplicates`);
  expect(missing).toEqual([]);
}, 120_000);
