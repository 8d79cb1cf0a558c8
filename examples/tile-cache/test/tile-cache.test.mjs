// The example as written, through the real `geowatch` CLI against the real memcached
// (bash .ci/servers/memcached.sh start && source .servers/env/memcached.env), read back over memcached's text protocol.
import { spawnSync } from "node:child_process";
import { readFileSync } from "node:fs";
import { Socket } from "node:net";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";
import { describe, expect, it } from "vitest";

const here = join(dirname(fileURLToPath(import.meta.url)), "..");
const bin = join(here, "..", "..", "apps", "broker", "bin", "geowatch.js");

function servers() {
  const v = process.env.GEOWATCH_MEMCACHED_SERVERS;
  if (!v) throw new Error("GEOWATCH_MEMCACHED_SERVERS is not set. From the repo root run: bash .ci/servers/memcached.sh start && source .servers/env/memcached.env");
  return v;
}

/** `get` over the text protocol: the value as text, or undefined when the key is absent. */
function mcGet(key) {
  const [host, port] = servers().split(",")[0].split(":");
  return new Promise((resolve, reject) => {
    const s = new Socket();
    let buf = Buffer.alloc(0);
    s.setTimeout(5000, () => s.destroy(new Error(`memcached get ${key}: no reply`)));
    s.on("error", reject);
    s.on("data", (d) => {
      buf = Buffer.concat([buf, d]);
      if (buf.toString("latin1").endsWith("END\r\n")) {
        s.end();
        const head = buf.indexOf("\r\n");
        const first = buf.subarray(0, head).toString();
        if (first === "END") return resolve(undefined);
        const bytes = Number(first.split(" ")[3]);
        resolve(buf.subarray(head + 2, head + 2 + bytes).toString("utf8"));
      }
    });
    s.connect(Number(port), host, () => s.write(`get ${key}\r\n`));
  });
}

const run = (args, env = {}) =>
  spawnSync(process.execPath, args, { cwd: here, encoding: "utf8", env: { ...process.env, GEOWATCH_LOG_LEVEL: "warn", ...env }, timeout: 120_000 });

describe("tile-cache example", () => {
  it("turns tile requests into memcached keys: latest request per tile, every request per source and zoom", async () => {
    servers();
    expect(run(["make-requests.mjs", "3000"]).status).toBe(0);
    const prefix = `tile-cache-test-${Date.now().toString(36)}:`;
    const r = run([bin, "run", "geowatch.yaml", "--until-idle"], { TILE_CACHE_PREFIX: prefix });
    expect(r.status, r.stderr).toBe(0);

    const lines = readFileSync(join(here, "out", "requests.log"), "utf8").trim().split("\n");
    expect(lines).toHaveLength(3002);
    const parse = (l) => {
      const [date, rest] = l.split(";");
      const [source, z, x, y, ext] = rest.split(",");
      return { line: l, date, source, z: Number(z), x: Number(x), y: Number(y), ext };
    };
    const all = lines.map(parse);
    const fresh = all.filter((t) => Date.now() - Date.parse(t.date) < 3600_000 && t.x < 2 ** t.z);
    expect(fresh).toHaveLength(3000);

    // One key per tile, holding its latest request.
    const latest = new Map();
    for (const t of fresh) latest.set(`tile/${t.source}/${t.z}/${t.x}/${t.y}.${t.ext}`, t.line);
    expect(latest.size).toBeGreaterThan(100);
    for (const [key, line] of latest) expect(await mcGet(prefix + key), key).toBe(`${line}\n`);

    // One key per source and zoom, holding every request in order.
    const perZoom = new Map();
    for (const t of fresh) {
      const k = `requests/${t.source}/${t.z}`;
      perZoom.set(k, (perZoom.get(k) ?? "") + `${t.line}\n`);
    }
    expect(perZoom.size).toBe(21);
    for (const [key, body] of perZoom) expect(await mcGet(prefix + key), key).toBe(body);

    // The stale request made no key; the bad line went to the dead letters with the field named.
    expect(await mcGet(`${prefix}tile/archive/1/0/0.png`)).toBeUndefined();
    expect(await mcGet(`${prefix}requests/archive/1`)).toBeUndefined();
    const dead = readFileSync(join(here, "out", "dead-letter.ndjson"), "utf8").trim().split("\n").map((l) => JSON.parse(l));
    expect(dead).toHaveLength(1);
    expect(dead[0].reason).toMatch(/x 16 is outside 0\.\.15 at zoom 4/);
  }, 150_000);
});
