import { execFile } from "node:child_process";
import { fileURLToPath } from "node:url";
import { promisify } from "node:util";
import { requireEnv } from "@geowatch/testkit";
import type { Consumer, InRecord } from "@geowatch/core";
import { connect, type ChannelModel } from "amqplib";

export const SCRIPT = fileURLToPath(new URL("../../../.ci/servers/rabbitmq.sh", import.meta.url));

export function amqpUrl(): string {
  return requireEnv(
    "GEOWATCH_AMQP_URL",
    "Start RabbitMQ with `.ci/servers/rabbitmq.sh start` and `source .servers/env/rabbitmq.env` (or run `pnpm test` at the root).",
  );
}

export const quiet = { debug() {}, info() {}, warn() {}, error() {} };

export function uniqueName(prefix: string): string {
  return `gw.${prefix}.${Date.now().toString(36)}${Math.random().toString(36).slice(2, 7)}`;
}

/** A plain amqplib connection for setting up and inspecting the server behind the backend's back. */
export async function admin(): Promise<ChannelModel> {
  try {
    const conn = await connect(amqpUrl());
    conn.on("error", () => {});
    return conn;
  } catch (err) {
    throw new Error(`RabbitMQ is not reachable at GEOWATCH_AMQP_URL; start it with \`.ci/servers/rabbitmq.sh start\` (${String(err)})`);
  }
}

export async function messageCount(conn: ChannelModel, queue: string): Promise<number> {
  const ch = await conn.createChannel();
  try {
    return (await ch.checkQueue(queue)).messageCount;
  } finally {
    await ch.close();
  }
}

export async function deleteAll(conn: ChannelModel, queues: string[], exchanges: string[]): Promise<void> {
  const ch = await conn.createChannel();
  ch.on("error", () => {});
  for (const q of queues) await ch.deleteQueue(q);
  for (const x of exchanges) await ch.deleteExchange(x);
  await ch.close();
}

export const text = (r: InRecord) => (typeof r.value === "string" ? r.value : Buffer.from(r.value).toString("utf8"));

/** Receives until `n` records arrived or `timeoutMs` passed. */
export async function receiveN(c: Consumer, n: number, timeoutMs = 10_000): Promise<InRecord[]> {
  const got: InRecord[] = [];
  const deadline = Date.now() + timeoutMs;
  while (got.length < n && Date.now() < deadline) {
    got.push(...(await c.receive(n - got.length, { waitMs: Math.min(500, Math.max(1, deadline - Date.now())) })));
  }
  return got;
}

const run = promisify(execFile);

/** Runs the server script (`stop` / `start`). */
export async function server(action: "start" | "stop"): Promise<void> {
  await run("bash", [SCRIPT, action], { timeout: 120_000 });
}
