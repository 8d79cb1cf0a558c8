// Running a benchmark's command under GNU time: wall-clock ms, CPU seconds and peak RSS in one call.
import { spawn, spawnSync } from "node:child_process";
import { createWriteStream, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { performance } from "node:perf_hooks";

/** True when GNU time (`/usr/bin/time -f`) is installed; without it CPU and RSS are undefined. */
export const GNU_TIME = spawnSync("/usr/bin/time", ["-f", "%M", "true"]).status === 0;
let seq = 0;

/**
 * Runs `cmd args`; resolves with its wall-clock `ms`, and with GNU time its CPU seconds `cpuS` (user + system,
 * of the command and the children it waited for) and peak RSS `rssMB` (the largest single process).
 * `stdout`: "ignore" (default), "capture" (resolved as `out`), or a file path to write it to. The last 4 KB
 * of stderr come back as `stderr`; a non-zero exit rejects with them. Killed after `timeoutMs` (10 min).
 */
export function timed(cmd, args, { env = process.env, stdout = "ignore", timeoutMs = 600_000 } = {}) {
  const usage = GNU_TIME ? join(tmpdir(), `gw-bench-time-${process.pid}-${seq++}`) : undefined;
  if (usage) {
    args = ["-f", "%M %U %S", "-o", usage, cmd, ...args];
    cmd = "/usr/bin/time";
  }
  return new Promise((resolve, reject) => {
    const t0 = performance.now();
    const child = spawn(cmd, args, { stdio: ["ignore", stdout === "ignore" ? "ignore" : "pipe", "pipe"], env });
    let out = "";
    let err = "";
    child.stderr.on("data", (d) => (err = (err + d).slice(-4000)));
    if (stdout === "capture") child.stdout.on("data", (d) => (out += d));
    else if (stdout !== "ignore") child.stdout.pipe(createWriteStream(stdout));
    const timer = setTimeout(() => child.kill("SIGKILL"), timeoutMs);
    child.on("error", reject);
    child.on("exit", (code, signal) => {
      clearTimeout(timer);
      const ms = performance.now() - t0;
      let rssMB;
      let cpuS;
      if (usage) {
        const [kb, user, sys] = readFileSync(usage, "utf8").trim().split("\n").at(-1).split(" ").map(Number);
        rmSync(usage, { force: true });
        rssMB = kb / 1024;
        cpuS = user + sys;
      }
      if (code !== 0) reject(new Error(`${cmd} ${args.join(" ")} exited ${code ?? signal}: ${err}`));
      else resolve({ ms, out, stderr: err, rssMB, cpuS });
    });
  });
}
