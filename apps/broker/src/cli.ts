import { readFileSync } from "node:fs";
import { dirname, resolve } from "node:path";
import { parseArgs } from "node:util";
import {
  ConfigError,
  isGeoWatchError,
  jsonLogger,
  reasonOf,
  Runtime,
  type BackendDefinition,
  type LogLevel,
  type OptionDoc,
  type Provisioned,
} from "@geowatch/core";
import { fileBackend } from "@geowatch/file";
import { queueBackend } from "@geowatch/queue";
import { consoleBackend } from "./console.js";
import { discoverPackages, projectImporter } from "./importer.js";
import { loadConfigFile } from "./load.js";
import { Metrics, startHttp } from "./metrics.js";
import { runConfigTests } from "./config-test.js";

/** Exit codes: 0 done, 1 runtime failure, 2 bad usage or config. */
export const EXIT = { ok: 0, failure: 1, usage: 2 } as const;

const HELP = `geowatch - a spatially-enabled message broker

Usage:
  geowatch run <config.yaml|json> [options]   run every enabled broker until stopped
  geowatch validate <config>                  list every problem in a config, with its path
  geowatch test <config> <tests.yaml>         config unit tests: given input messages, assert what sinks get
  geowatch backends                           list installed backends, their roles and options
  geowatch schema                             print the config JSON Schema (for editors)

Options for run:
  --max-cycles <n>      stop after n cycles per broker
  --once                one cycle, then drain and exit
  --until-idle          stop when a cycle receives nothing and nothing is in flight
  --metrics-port <p>    serve /metrics, /health, /ready on 127.0.0.1:<p> (env GEOWATCH_METRICS_PORT)
  --metrics-host <h>    address for that server (default 127.0.0.1)
  --log-level <level>   debug | info | warn | error | silent (default info; env GEOWATCH_LOG_LEVEL)
  --no-status           no live status line on a terminal
  -h, --help            this help
  -v, --version         the version

Config values may use \${ENV_VAR}, \${ENV_VAR:-default} and \${file:/path/to/secret};
\${GEOWATCH_CONFIG_DIR} is the directory of the config file.
SIGINT/SIGTERM stop consuming, deliver what is in flight, flush stores, acknowledge and exit 0.

Exit codes: 0 ok, 1 runtime failure (a backend could not connect), 2 bad usage or config.`;

const BUILTIN: BackendDefinition[] = [consoleBackend, fileBackend, queueBackend];

function version(): string {
  const pkg = JSON.parse(readFileSync(new URL("../package.json", import.meta.url), "utf8")) as { version: string };
  return pkg.version;
}

/** Makes the runtime the CLI uses: built-in backends plus whatever the user's project installed. */
export function makeRuntime(configPath: string | undefined, level: LogLevel, metrics?: Metrics): Runtime {
  const baseDir = configPath ? dirname(resolve(configPath)) : process.cwd();
  const env = { ...process.env, GEOWATCH_CONFIG_DIR: baseDir };
  return new Runtime({
    backends: BUILTIN,
    importer: projectImporter(),
    discover: discoverPackages(),
    baseDir,
    logger: jsonLogger({ level }),
    env,
    ...(metrics ? { observer: (b: string) => metrics.observer(b) } : {}),
  });
}

function fail(err: unknown, out: (s: string) => void): number {
  if (err instanceof ConfigError) {
    out(err.message);
    return EXIT.usage;
  }
  out(isGeoWatchError(err) ? err.message : `[geowatch] ${reasonOf(err)}`);
  return isGeoWatchError(err, "CONFIG") ? EXIT.usage : EXIT.failure;
}

/** The CLI; returns the exit code. */
export async function main(argv: string[]): Promise<number> {
  const err = (s: string) => process.stderr.write(s + "\n");
  let parsed;
  try {
    parsed = parseArgs({
      args: argv,
      allowPositionals: true,
      options: {
        "max-cycles": { type: "string" },
        once: { type: "boolean" },
        "until-idle": { type: "boolean" },
        "metrics-port": { type: "string" },
        "metrics-host": { type: "string" },
        "log-level": { type: "string" },
        "no-status": { type: "boolean" },
        help: { type: "boolean", short: "h" },
        version: { type: "boolean", short: "v" },
      },
    });
  } catch (e) {
    err(`${reasonOf(e)}\n\n${HELP}`);
    return EXIT.usage;
  }
  const { values: o, positionals } = parsed;
  const [command, ...rest] = positionals;
  if (o.version) {
    process.stdout.write(version() + "\n");
    return EXIT.ok;
  }
  if (o.help || !command || command === "help") {
    (command || o.help ? process.stdout : process.stderr).write(HELP + "\n");
    return command || o.help ? EXIT.ok : EXIT.usage;
  }
  const level = (o["log-level"] ?? process.env.GEOWATCH_LOG_LEVEL ?? "info") as LogLevel;
  if (!["debug", "info", "warn", "error", "silent"].includes(level)) {
    err(`--log-level must be debug, info, warn, error or silent (got "${level}")`);
    return EXIT.usage;
  }

  switch (command) {
    case "schema":
      process.stdout.write(JSON.stringify(await makeRuntime(undefined, "silent").jsonSchema(), null, 2) + "\n");
      return EXIT.ok;
    case "backends":
      return listBackends();
    case "validate": {
      if (rest.length !== 1) return usage("validate takes one config file");
      try {
        const issues = await makeRuntime(rest[0], "silent").validate(loadConfigFile(rest[0]!));
        if (issues.length > 0) throw new ConfigError(issues, rest[0]);
        process.stdout.write(`${rest[0]}: ok\n`);
        return EXIT.ok;
      } catch (e) {
        return fail(e, err);
      }
    }
    case "test": {
      if (rest.length !== 2) return usage("test takes a config file and a tests file");
      try {
        return await runConfigTests(rest[0]!, rest[1]!, (p) => makeRuntime(p, "silent"));
      } catch (e) {
        return fail(e, err);
      }
    }
    case "run": {
      if (rest.length !== 1) return usage("run takes one config file");
      const maxCycles = o.once ? 1 : o["max-cycles"] !== undefined ? Number(o["max-cycles"]) : undefined;
      if (maxCycles !== undefined && (!Number.isInteger(maxCycles) || maxCycles < 1)) return usage("--max-cycles must be a positive integer");
      const portText = o["metrics-port"] ?? process.env.GEOWATCH_METRICS_PORT;
      const port = portText !== undefined ? Number(portText) : undefined;
      if (port !== undefined && (!Number.isInteger(port) || port < 0 || port > 65535)) return usage("--metrics-port must be a port number");
      return run(rest[0]!, { level, maxCycles, untilIdle: o["until-idle"] ?? false, port, host: o["metrics-host"] ?? "127.0.0.1", status: !o["no-status"] });
    }
    default:
      return usage(`unknown command "${command}"`);
  }

  function usage(msg: string): number {
    err(`${msg}\n\n${HELP}`);
    return EXIT.usage;
  }
}

/** `geowatch backends`: the installed backends, stages and package codecs, with their options as config spells them. */
async function listBackends(): Promise<number> {
  const { backends, stages, codecs, errors } = await makeRuntime(undefined, "silent").installed();
  const lines: string[] = ["Backends (name in config: `backend: <name>`):"];
  const options = (docs: OptionDoc[]) => {
    for (const d of docs) {
      const extra = [d.required ? "required" : "", d.default !== undefined ? `default ${JSON.stringify(d.default)}` : "", d.env ? `env ${d.env}` : ""].filter(Boolean).join(", ");
      lines.push(`      ${d.name}: ${d.type}${extra ? ` (${extra})` : ""}${d.description ? ` - ${d.description}` : ""}`);
    }
  };
  for (const def of [...backends].sort((a, b) => a.name.localeCompare(b.name))) {
    lines.push("", `  ${def.name} - ${def.description}`);
    for (const role of ["consumer", "producer", "store"] as const) {
      const r = def[role];
      if (!r) continue;
      lines.push(`    as ${role}:`);
      options(r.docs());
    }
  }
  if (stages.length > 0) {
    lines.push("", "Stages (`stage: <name>`):");
    for (const s of [...stages].sort((a, b) => a.name.localeCompare(b.name))) {
      lines.push("", `  ${s.name} - ${s.description}`);
      options(s.docs());
    }
  }
  if (codecs.length > 0) {
    lines.push("", "Codecs from packages (`codec: <name>` or `codec: { name: <name>, options: {...} }`; built in: plain, json, ndjson, geojson, tsv, list, csv, template):");
    for (const c of [...codecs].sort((a, b) => a.name.localeCompare(b.name))) {
      lines.push("", `  ${c.name} - ${c.description}`);
      options(c.docs());
    }
  }
  if (errors.length > 0) lines.push("", "Installed but failed to load:", ...errors.map((e) => `  ${e}`));
  lines.push("", "Another backend: install its package in your project and name it in config by its package name.");
  process.stdout.write(lines.join("\n") + "\n");
  return EXIT.ok;
}

interface RunFlags {
  level: LogLevel;
  maxCycles: number | undefined;
  untilIdle: boolean;
  port: number | undefined;
  host: string;
  status: boolean;
}

async function run(path: string, f: RunFlags): Promise<number> {
  const err = (s: string) => process.stderr.write(s + "\n");
  const metrics = new Metrics();
  let app: Provisioned | undefined;
  let server: Awaited<ReturnType<typeof startHttp>> | undefined;
  try {
    app = await makeRuntime(path, f.level, metrics).load(loadConfigFile(path), path);
  } catch (e) {
    return fail(e, err);
  }
  metrics.setNodes(app.health());
  if (f.port !== undefined) {
    const current = app;
    server = await startHttp(f.port, f.host, metrics, () => current);
  }
  let signals = 0;
  const onSignal = (sig: NodeJS.Signals) => {
    signals++;
    if (signals > 1) {
      err(`[geowatch] second ${sig}: exiting now; unacknowledged messages will be redelivered`);
      process.exit(130);
    }
    err(`[geowatch] ${sig}: stopping, delivering what is in flight (send ${sig} again to exit at once)`);
    void app?.stop();
  };
  process.on("SIGINT", onSignal);
  process.on("SIGTERM", onSignal);
  const status = f.status && process.stderr.isTTY ? statusLine(app) : undefined;
  try {
    const stats = await app.run({ ...(f.maxCycles !== undefined ? { maxCycles: f.maxCycles } : {}), untilIdle: f.untilIdle });
    await app.stop();
    status?.stop();
    const total = stats.reduce(
      (a, s) => ({ received: a.received + s.received, sent: a.sent + s.sent, dead: a.dead + s.deadLettered, acked: a.acked + s.acked }),
      { received: 0, sent: 0, dead: 0, acked: 0 },
    );
    err(`[geowatch] done: ${total.received} received, ${total.sent} sent, ${total.acked} acknowledged, ${total.dead} dead-lettered`);
    return EXIT.ok;
  } catch (e) {
    status?.stop();
    await app.stop().catch(() => undefined);
    return fail(e, err);
  } finally {
    process.off("SIGINT", onSignal);
    process.off("SIGTERM", onSignal);
    server?.close();
  }
}

/** A compact live status line on a terminal: counts and rates per broker. */
function statusLine(app: Provisioned): { stop(): void } {
  let last = { t: Date.now(), received: 0 };
  const timer = setInterval(() => {
    const now = Date.now();
    const s = app.brokers.map((b) => b.stats);
    const received = s.reduce((a, x) => a + x.received, 0);
    const rate = Math.round(((received - last.received) * 1000) / Math.max(1, now - last.t));
    last = { t: now, received };
    const parts = app.brokers.map((b) => `${b.name}: ${b.stats.received} in, ${b.stats.sent} out, ${b.stats.deadLettered} dead, ${b.stats.inFlight} in flight`);
    process.stderr.write(`\r\x1b[2K[geowatch] ${rate}/s | ${parts.join(" | ")}`);
  }, 1000);
  timer.unref();
  return {
    stop() {
      clearInterval(timer);
      process.stderr.write("\r\x1b[2K");
    },
  };
}
