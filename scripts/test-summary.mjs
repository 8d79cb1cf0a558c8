// Totals every suite's vitest JSON report into one closing line; exits non-zero on any failure.
import { readdirSync, readFileSync } from "node:fs";
import { join } from "node:path";

const [dir, ...failedSteps] = process.argv.slice(2);
let passed = 0, failed = 0, skipped = 0;
const failedSuites = new Set();
for (const f of readdirSync(dir).filter((f) => f.endsWith(".json")).sort()) {
  const r = JSON.parse(readFileSync(join(dir, f), "utf8"));
  const p = r.numPassedTests ?? 0, x = r.numFailedTests ?? 0, s = (r.numPendingTests ?? 0) + (r.numTodoTests ?? 0);
  const name = f.replace(/\.json$/, "");
  console.log(`${name.padEnd(14)} ${p} passed, ${x} failed${s ? `, ${s} skipped` : ""}`);
  passed += p; failed += x; skipped += s;
  if (x > 0) failedSuites.add(name);
}
for (const s of failedSteps) console.log(`FAILED STEP: ${s}`);
// A failed step whose failures no report counted (lint, a server, a suite that could not run) is one failure.
const stepFailures = failedSteps.filter((s) => !(s.startsWith("tests in ") && failedSuites.has(s.split("/").pop()))).length;
console.log(`${passed} passed, ${failed + stepFailures} failed${skipped ? `, ${skipped} skipped` : ""}`);
process.exit(failed + failedSteps.length > 0 ? 1 : 0);
