// `geowatch run` as a child process, a memcached of a test's own, and polling: for the tests that run the real CLI.
import { spawn, type ChildProcess } from "node:child_process";
import { mkdtempSync, writeFileSync } from "node:fs";
import { Socket } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { freePort, requireEnv, until } from "@geowatch/testkit";

export const ROOT = fileURLToPath(new URL("../../..", import.meta.url));
export const BIN = join(ROOT, "apps/broker/bin/geowatch.js");
/** The CLI runs from apps/broker, which has @geowatch/memcached as a devDependency, so `backend: memcached` resolves. */
export const APP_DIR = join(ROOT, "apps/broker");
const HINT = "From the repo root run: bash .ci/servers/memcached.sh start && source .servers/env/memcached.env";

export const memcachedServers = () => requireEnv("GEOWATCH_MEMCACHED_SERVERS", HINT);
export const memcachedBin = () => requireEnv("GEOWATCH_MEMCACHED_BIN", HINT);
export const sleep = (ms: number) => new Promise<void>((r) => setTimeout(r, ms));
export const unique = (tag: string) => `gwt-${tag}-${Date.now().toString(36)}${Math.random().toString(36).slice(2, 6)}`;

export function tempDir(tag: string): string {
  return mkdtempSync(join(tmpdir(), `geowatch-memcached-${tag}-`));
}

export function writeConfig(dir: string, lines: string[]): string {
  const path = join(dir, "geowatch.yaml");
  writeFileSync(path, lines.join("\n") + "\n");
  return path;
}

export { freePort, until };

/** Runs the CLI to its end (`run --until-idle`, `validate`); resolves with its exit code and output. */
export function runCli(args: string[], timeoutMs = 60_000): Promise<{ code: number | null; stdout: string; stderr: string }> {
  return new Promise((resolve) => {
    const p = spawn(process.execPath, [BIN, ...args], { cwd: APP_DIR, env: { ...process.env, GEOWATCH_LOG_LEVEL: "info" }, stdio: ["ignore", "pipe", "pipe"] });
    let stdout = "";
    let stderr = "";
    p.stdout.on("data", (d: Buffer) => (stdout += d.toString()));
    p.stderr.on("data", (d: Buffer) => (stderr += d.toString()));
    const t = setTimeout(() => p.kill("SIGKILL"), timeoutMs);
    p.once("exit", (code) => {
      clearTimeout(t);
      resolve({ code, stdout, stderr });
    });
  });
}

/** A `geowatch run` child serving /ready on its own port. */
export interface RunChild {
  proc: ChildProcess;
  stderr(): string;
  exited: Promise<number | null>;
  ready(): Promise<{ status: number; body: { ready: boolean; nodes: Array<{ node: string; state: string; error?: string }> } } | undefined>;
  /** SIGTERM (drain and exit), SIGKILL after `graceMs`. */
  stop(graceMs?: number): Promise<number | null>;
}

export async function startRun(config: string): Promise<RunChild> {
  const port = await freePort();
  const proc = spawn(process.execPath, [BIN, "run", config, "--metrics-port", String(port), "--no-status"], {
    cwd: APP_DIR,
    env: { ...process.env, GEOWATCH_LOG_LEVEL: "info" },
    stdio: ["ignore", "ignore", "pipe"],
  });
  let err = "";
  proc.stderr!.on("data", (d: Buffer) => (err += d.toString()));
  const exited = new Promise<number | null>((r) => proc.once("exit", (code) => r(code)));
  return {
    proc,
    stderr: () => err,
    exited,
    async ready() {
      try {
        const r = await fetch(`http://127.0.0.1:${port}/ready`, { signal: AbortSignal.timeout(2000) });
        return { status: r.status, body: (await r.json()) as { ready: boolean; nodes: Array<{ node: string; state: string; error?: string }> } };
      } catch {
        return undefined;
      }
    },
    async stop(graceMs = 30_000) {
      if (proc.exitCode !== null || proc.signalCode !== null) return proc.exitCode;
      proc.kill("SIGTERM");
      const t = setTimeout(() => proc.kill("SIGKILL"), graceMs);
      const code = await exited;
      clearTimeout(t);
      return code;
    },
  };
}

/** A memcached of the test's own (the CI server's binary) on a free port: started and stopped by pid, never anyone else's. */
export interface OwnMemcached {
  port: number;
  servers: string;
  /** SIGKILL: the items are gone. */
  kill(): Promise<void>;
  /** SIGUSR1: a graceful stop that, with `memoryFile`, saves the items for the next start (memcached's warm restart). */
  stop(): Promise<void>;
  start(): Promise<void>;
}

export async function ownMemcached(opts: { memoryFile?: string } = {}): Promise<OwnMemcached> {
  const bin = memcachedBin();
  const port = await freePort();
  let proc: ChildProcess | undefined;
  const answers = () =>
    new Promise<true | undefined>((resolve) => {
      const s = new Socket();
      s.once("error", () => resolve(undefined));
      s.connect(port, "127.0.0.1", () => {
        s.end("version\r\n");
        s.once("data", (d: Buffer) => resolve(d.toString().startsWith("VERSION") ? true : undefined));
      });
    });
  const up = async () => {
    const args = ["-l", "127.0.0.1", "-p", String(port), "-U", "0", "-m", "64", "-I", "2m"];
    if (opts.memoryFile) args.push("-e", opts.memoryFile);
    if (process.getuid?.() === 0) args.unshift("-u", "root");
    proc = spawn(bin, args, { stdio: "ignore" });
    await until(`memcached on 127.0.0.1:${port}`, answers, 10_000, 50);
  };
  const signal = async (sig: NodeJS.Signals) => {
    const p = proc;
    if (!p || p.exitCode !== null || p.signalCode !== null) return;
    const gone = new Promise((r) => p.once("exit", r));
    p.kill(sig);
    await gone;
  };
  await up();
  return { port, servers: `127.0.0.1:${port}`, kill: () => signal("SIGKILL"), stop: () => signal("SIGUSR1"), start: up };
}
