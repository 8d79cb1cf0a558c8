// `pnpm bench [name...]`: runs bench/<name>.bench.mjs (all when none given), one process each.
import { readdirSync } from "node:fs";
import { spawnSync } from "node:child_process";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";

const here = dirname(fileURLToPath(import.meta.url));
const wanted = process.argv.slice(2);
const all = readdirSync(here).filter((f) => f.endsWith(".bench.mjs")).sort();
const chosen = wanted.length ? all.filter((f) => wanted.some((w) => f.startsWith(w))) : all;
if (chosen.length === 0) {
  console.error(`no benchmark matches ${wanted.join(", ")} (have: ${all.join(", ")})`);
  process.exit(2);
}
let failed = 0;
for (const f of chosen) {
  console.log(`\n### ${f}`);
  const r = spawnSync(process.execPath, ["--expose-gc", join(here, f)], { stdio: "inherit" });
  if (r.status !== 0) failed++;
}
process.exit(failed ? 1 : 0);
