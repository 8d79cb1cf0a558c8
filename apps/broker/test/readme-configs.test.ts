// Every config a README shows must run as written: each ```yaml block with a top-level `brokers:` goes
// through the real CLI's `validate`. A snippet that is not a whole config must not start a line with `brokers:`.
import { spawnSync } from "node:child_process";
import { mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { dirname, join, relative } from "node:path";
import { fileURLToPath } from "node:url";
import { afterAll, describe, expect, it } from "vitest";

const BIN = fileURLToPath(new URL("../bin/geowatch.js", import.meta.url));
const ROOT = fileURLToPath(new URL("../../..", import.meta.url));
const SKIP_DIRS = new Set(["node_modules", "dist", "out", ".git", ".tools", ".servers", ".turbo", ".test-reports", "coverage"]);

function readmes(dir: string): string[] {
  const found: string[] = [];
  for (const entry of readdirSync(dir, { withFileTypes: true })) {
    if (entry.isDirectory() && !SKIP_DIRS.has(entry.name)) found.push(...readmes(join(dir, entry.name)));
    else if (entry.isFile() && entry.name === "README.md") found.push(join(dir, entry.name));
  }
  return found;
}

interface Block {
  readme: string;
  index: number;
  yaml: string;
}

const blocks: Block[] = readmes(ROOT)
  .sort()
  .flatMap((path) => {
    const text = readFileSync(path, "utf8");
    return [...text.matchAll(/^```ya?ml\r?\n([\s\S]*?)^```/gm)].map((m, i) => ({ readme: relative(ROOT, path), index: i + 1, yaml: m[1]! }));
  })
  .filter((b) => /^brokers:/m.test(b.yaml));

/** A dummy value for an env var a README config names: the config must validate, not connect. */
function dummy(name: string): string {
  if (/BROKERS/.test(name)) return "127.0.0.1:9092";
  if (/AMQP_URL/.test(name)) return "amqp://guest:guest@127.0.0.1:5672";
  return `dummy-${name.toLowerCase()}`;
}

/** One small polygon fence, for `fences: ./x.geojson` and the like. */
const FENCES = JSON.stringify({
  type: "FeatureCollection",
  features: [
    {
      type: "Feature",
      id: "harbour",
      properties: { name: "harbour" },
      geometry: { type: "Polygon", coordinates: [[[10, 50], [11, 50], [11, 51], [10, 51], [10, 50]]] },
    },
  ],
});

const work = mkdtempSync(join(tmpdir(), "geowatch-readme-"));
afterAll(() => rmSync(work, { recursive: true, force: true }));

function validate(yaml: string, tag: string) {
  const dir = join(work, tag.replace(/[^\w.-]+/g, "_"));
  mkdirSync(dir, { recursive: true });
  const env: Record<string, string> = { ...process.env, GEOWATCH_LOG_LEVEL: "warn" } as Record<string, string>;
  for (const m of yaml.matchAll(/\$\{([A-Za-z_][A-Za-z0-9_]*)(?::-[^}]*)?\}/g)) {
    const name = m[1]!;
    if (name !== "GEOWATCH_CONFIG_DIR") env[name] = dummy(name);
  }
  // Relative GeoJSON files the config reads (fences) exist, as they would next to a real config.
  for (const m of yaml.matchAll(/(?<![\w/])(\.{1,2}\/[\w./-]+\.geojson)\b/g)) {
    const file = join(dir, m[1]!);
    mkdirSync(dirname(file), { recursive: true });
    writeFileSync(file, FENCES);
  }
  const config = join(dir, "config.yaml");
  writeFileSync(config, yaml);
  return spawnSync(process.execPath, [BIN, "validate", config], { cwd: dir, encoding: "utf8", env, timeout: 60_000 });
}

describe("README configs", () => {
  it("finds the configs of the root, broker, file, queue, amqp and kafka READMEs", () => {
    expect(blocks.length).toBeGreaterThanOrEqual(7);
    const covered = new Set(blocks.map((b) => b.readme));
    for (const readme of [
      "README.md",
      "apps/broker/README.md",
      "packages/file/README.md",
      "packages/queue/README.md",
      "packages/amqp/README.md",
      "packages/kafka/README.md",
    ]) {
      expect(covered, `${readme} has no config block starting with "brokers:"`).toContain(readme);
    }
  });

  it("a config in the shape the READMEs used to show (sources/sinks) fails validate, so this check can fail", () => {
    const r = validate("sources:\n  events:\n    backend: file\n    options: { path: ./events.ndjson }\n", "old-shape");
    expect(r.status).toBe(2);
    expect(r.stderr).toMatch(/sources/);
  });

  it.each(blocks.map((b) => [`${b.readme} yaml block ${b.index}`, b] as const))("%s passes geowatch validate", (tag, block) => {
    const r = validate(block.yaml, tag);
    expect(r.status, `${tag}:\n${block.yaml}\n${r.stdout}${r.stderr}`).toBe(0);
    expect(r.stdout).toMatch(/: ok\s*$/);
  });
});
