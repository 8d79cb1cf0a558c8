// kafkajs 2.2.4's own modules as published, loaded apart from require.cache (where the backend seeds its
// replacements), for tests that compare the replacements with the originals.
import Module, { createRequire } from "node:module";
import { readFileSync } from "node:fs";
import { dirname } from "node:path";
import vm from "node:vm";

const load = createRequire(import.meta.url);
export const kafkajsRoot = dirname(load.resolve("kafkajs/package.json"));

type Internal = { _resolveFilename(id: string, parent: Module): string; _nodeModulePaths(dir: string): string[]; wrap(src: string): string };
const M = Module as unknown as Internal;

/** One private registry: kafkajs' files required from a pristine module are pristine too (prototypes unpatched). */
const registry = new Map<string, Module>();

function loadFile(file: string): unknown {
  const hit = registry.get(file);
  if (hit) return hit.exports;
  const m = new Module(file);
  m.filename = file;
  m.paths = M._nodeModulePaths(dirname(file));
  registry.set(file, m);
  const req = (id: string) => {
    const f = M._resolveFilename(id, m);
    return f.startsWith(`${kafkajsRoot}/src/`) ? loadFile(f) : load(f);
  };
  const fn = vm.runInThisContext(M.wrap(readFileSync(file, "utf8")), { filename: file }) as (...args: unknown[]) => void;
  fn.call(m.exports, m.exports, req, m, file, dirname(file));
  m.loaded = true;
  return m.exports;
}

/** kafkajs' original module at `rel` (e.g. "src/protocol/recordBatch/v0/index.js"). */
export function pristine<T = any>(rel: string): T {
  return loadFile(`${kafkajsRoot}/${rel}`) as T;
}

/** The module at `rel` as kafkajs itself requires it in this process (the replacement where one is seeded). */
export function live<T = any>(rel: string): T {
  return load(`${kafkajsRoot}/${rel}`) as T;
}
