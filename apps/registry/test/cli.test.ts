import { execFile } from "node:child_process";
import { readFileSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { promisify } from "node:util";
import { describe, expect, it } from "vitest";
import { checkJobChannel, loadConfig } from "../src/index.js";
import { env, tmpDir } from "./helpers.js";

const BIN = join(import.meta.dirname, "..", "bin", "geowatch-registry.js");
const exec = promisify(execFile);

async function cli(args: string[], cwd: string): Promise<{ code: number; stdout: string; stderr: string }> {
  try {
    const r = await exec(process.execPath, [BIN, ...args], { cwd, timeout: 60_000, env: { ...process.env, GEOWATCH_REGISTRY_CONFIG: "" } });
    return { code: 0, stdout: r.stdout, stderr: r.stderr };
  } catch (err) {
    const e = err as { code: number; stdout: string; stderr: string };
    return { code: e.code, stdout: e.stdout, stderr: e.stderr };
  }
}

describe("geowatch-registry CLI", () => {
  it("--help, usage errors exit 2", async () => {
    const dir = tmpDir();
    const help = await cli(["--help"], dir);
    expect(help.code).toBe(0);
    expect(help.stdout).toContain("Commands:");
    expect((await cli(["frobnicate"], dir)).code).toBe(2);
    expect((await cli(["add", "--type", "nope", "http://x.test/"], dir)).code).toBe(2);
    expect((await cli(["harvest", "abc"], dir)).code).toBe(2);
  });

  it("add refuses loopback without --allow-private (exit 1, the reason on stderr)", async () => {
    const r = await cli(["add", env.qgis(), "--type", "OGC:WMS"], tmpDir());
    expect(r.code).toBe(1);
    expect(r.stderr).toMatch(/refused to fetch .*127\.0\.0\.1/);
  });

  it("add --now harvests with progress; check, services, search; export then import round-trips", async () => {
    const dir = tmpDir();
    const add = await cli(["--allow-private", "add", "--now", env.qgis(), `${env.mapproxy()}/tms/1.0.0/`, env.pycsw(), "--type", "OGC:WMS"], dir);
    // One --type for all: the TMS root and the CSW answer no WMS capabilities, so those two harvests fail.
    expect(add.code).toBe(1);
    expect(add.stderr).toContain("service 1: 2 layers");
    expect(add.stderr).toMatch(/service 2: harvest failed/);
    const add2 = await cli(["--allow-private", "add", "--now", `${env.mapproxy()}/tms/1.0.0/`, `${env.pycsw()}?service=CSW`], dir);
    expect(add2.code, add2.stderr).toBe(0);
    expect(add2.stderr).toMatch(/service 5: 3 layers/);
    const check = await cli(["--allow-private", "check", "1", "4", "5"], dir);
    expect(check.code).toBe(0);
    expect(check.stderr).toContain("[1/3] service 1: 3/3 checks ok");
    const services = await cli(["services"], dir);
    expect(services.stdout).toMatch(/^1\tOGC:WMS\t.*\t2 layers\treliability 100%/m);
    const search = await cli(["search", "roads", "--json"], dir);
    expect(JSON.parse(search.stdout)).toMatchObject({ "a.matchDocs": 1, "d.docs": [{ title: "Roads of Boston" }] });
    const out = join(dir, "export.xml");
    expect((await cli(["export", "--out", out], dir)).code).toBe(0);
    const xml = readFileSync(out, "utf8");
    expect(xml).toContain("<dc:title>Roads of Boston</dc:title>");
    const other = tmpDir();
    const imp = await cli(["import", out], other);
    expect(imp.code).toBe(0);
    expect(imp.stdout).toBe("imported 6 records\n"); // 2 WMS layers, 1 TMS layer, 3 CSW records
    const again = await cli(["search", "--json", "--geo", "[42,-72 TO 43,-70]", "--limit", "20"], other);
    expect(JSON.parse(again.stdout)["d.docs"].map((d: { title: string }) => d.title)).toContain("Roads of Boston");
  });

  it("every config in the README validates (with its password file in place), its jobs backend options too", async () => {
    const readme = readFileSync(join(import.meta.dirname, "..", "README.md"), "utf8");
    const blocks = [...readme.matchAll(/```yaml\n([\s\S]*?)```/g)].map((m) => m[1]!);
    expect(blocks.length).toBeGreaterThan(0);
    const dir = tmpDir();
    writeFileSync(join(dir, "pw"), "secret\n");
    for (const [i, b] of blocks.entries()) {
      const file = join(dir, `readme-${i}.yaml`);
      writeFileSync(file, b.replace("/run/secrets/registry-csw", join(dir, "pw")));
      const c = loadConfig(file, {});
      expect(c.csw.password).toBe("secret");
      // The jobs section is checked against its backend's schemas too (without connecting).
      await checkJobChannel(c);
      if (c.jobs.backend !== "queue") expect(c.storage.engine).toBe("postgres");
    }
    expect(blocks.some((b) => b.includes("backend: kafka")) && blocks.some((b) => b.includes("backend: amqp"))).toBe(true);
  });
});
