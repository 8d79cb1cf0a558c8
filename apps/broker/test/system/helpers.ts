// Shared by the system tests: real servers, `geowatch run` as child processes, their logs and /metrics.
import { spawn, type ChildProcessWithoutNullStreams } from "node:child_process";
import { mkdtempSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { freePort, until } from "@geowatch/testkit";

export const BIN = fileURLToPath(new URL("../../bin/geowatch.js", import.meta.url));
/** apps/broker: the child runs here so `backend: kafka` resolves @geowatch/kafka from this project. */
export const APP_DIR = fileURLToPath(new URL("../..", import.meta.url));
export const ROOT = fileURLToPath(new URL("../../../..", import.meta.url));
export const KAFKA_SH = join(ROOT, ".ci/servers/kafka.sh");
export const RABBITMQ_SH = join(ROOT, ".ci/servers/rabbitmq.sh");

const HOW: Record<string, string> = {
  GEOWATCH_KAFKA_BROKERS: "bash .ci/servers/kafka.sh start && source .servers/env/kafka.env",
  GEOWATCH_AMQP_URL: "bash .ci/servers/rabbitmq.sh start && source .servers/env/rabbitmq.env",
};

/** The server env var, or a failure (never a skip) that says how to start the server. */
export function requireServer(name: "GEOWATCH_KAFKA_BROKERS" | "GEOWATCH_AMQP_URL"): string {
  const v = process.env[name];
  if (!v) throw new Error(`${name} is not set: this system test needs the real server. From the repo root run: ${HOW[name]}`);
  return v;
}

export const sleep = (ms: number) => new Promise<void>((r) => setTimeout(r, ms));

export { freePort, until };

export function tempDir(tag: string): string {
  return mkdtempSync(join(tmpdir(), `geowatch-${tag}-`));
}

export function writeConfig(dir: string, lines: string[]): string {
  const path = join(dir, "geowatch.yaml");
  writeFileSync(path, lines.join("\n") + "\n");
  return path;
}

/** A `geowatch run` child with its stderr (JSON log lines) collected and its /metrics port. */
export interface RunChild {
  proc: ChildProcessWithoutNullStreams;
  pid: number;
  port: number;
  stderr(): string;
  /** Parsed JSON log lines so far. */
  logs(): Array<Record<string, unknown> & { msg?: string; level?: string }>;
  exited: Promise<number | null>;
  /** A counter from /metrics summed over its label sets (0 when absent); undefined when unreachable. */
  metric(name: string): Promise<number | undefined>;
  ready(): Promise<{ status: number; body: { ready: boolean; nodes: Array<{ node: string; state: string; error?: string }> } } | undefined>;
}

export async function startRun(config: string, env: Record<string, string | undefined> = {}): Promise<RunChild> {
  const port = await freePort();
  const proc = spawn(process.execPath, [BIN, "run", config, "--metrics-port", String(port), "--no-status"], {
    cwd: APP_DIR,
    env: { ...process.env, GEOWATCH_LOG_LEVEL: "info", ...env },
    stdio: ["pipe", "pipe", "pipe"],
  });
  let err = "";
  proc.stderr.on("data", (d: Buffer) => (err += d.toString()));
  proc.stdout.resume();
  const exited = new Promise<number | null>((r) => proc.once("exit", (code) => r(code)));
  const base = `http://127.0.0.1:${port}`;
  return {
    proc,
    pid: proc.pid!,
    port,
    stderr: () => err,
    logs: () =>
      err
        .split("\n")
        .filter((l) => l.startsWith("{"))
        .flatMap((l) => {
          try {
            return [JSON.parse(l) as Record<string, unknown>];
          } catch {
            return [];
          }
        }),
    exited,
    async metric(name) {
      try {
        const text = await (await fetch(`${base}/metrics`, { signal: AbortSignal.timeout(2000) })).text();
        let sum = 0;
        for (const line of text.split("\n")) if (line.startsWith(`${name}{`) || line.startsWith(`${name} `)) sum += Number(line.slice(line.lastIndexOf(" ") + 1));
        return sum;
      } catch {
        return undefined;
      }
    },
    async ready() {
      try {
        const r = await fetch(`${base}/ready`, { signal: AbortSignal.timeout(2000) });
        return { status: r.status, body: (await r.json()) as { ready: boolean; nodes: Array<{ node: string; state: string; error?: string }> } };
      } catch {
        return undefined;
      }
    },
  };
}

/** SIGTERM (drain and exit 0), SIGKILL after `graceMs`; returns the exit code (null when killed). */
export async function stopRun(c: RunChild, graceMs = 30_000): Promise<number | null> {
  if (c.proc.exitCode !== null || c.proc.signalCode !== null) return c.proc.exitCode;
  c.proc.kill("SIGTERM");
  const t = setTimeout(() => c.proc.kill("SIGKILL"), graceMs);
  const code = await c.exited;
  clearTimeout(t);
  return code;
}

/** Runs a server script (`kafka.sh restart 5`) and resolves with its exit code and output. */
export function runScript(script: string, args: string[]): Promise<{ code: number | null; output: string }> {
  return new Promise((resolve) => {
    const p = spawn("bash", [script, ...args], { cwd: ROOT, stdio: ["ignore", "pipe", "pipe"] });
    let out = "";
    p.stdout.on("data", (d: Buffer) => (out += d.toString()));
    p.stderr.on("data", (d: Buffer) => (out += d.toString()));
    p.once("exit", (code) => resolve({ code, output: out }));
  });
}

export const unique = (tag: string) => `gw-sys-${tag}-${Date.now().toString(36)}${Math.random().toString(36).slice(2, 6)}`;
