import { readFileSync } from "node:fs";
import { extname } from "node:path";
import { parseDocument } from "yaml";
import { ConfigError, reasonOf, type ConfigIssue } from "@geowatch/core";

/** Most alias expansions a YAML file may make: enough for shared defaults, far too few for a "billion laughs". */
const MAX_ALIAS_COUNT = 100;

/** Keys that would reach an object's prototype (the same set core's config check refuses). */
const FORBIDDEN_KEYS = new Set(["__proto__", "constructor", "prototype"]);

/**
 * Reads a YAML or JSON config file. Every way it can be unusable (unreadable, a syntax error with its
 * line and column, empty, too many aliases, not a mapping at the top, a prototype key anywhere) is a
 * ConfigError, so the CLI exits 2 with a message instead of an internal error.
 */
export function loadConfigFile(path: string): unknown {
  let text: string;
  try {
    text = readFileSync(path, "utf8");
  } catch (err) {
    throw new ConfigError([{ path: "", message: `cannot read ${path}: ${(err as NodeJS.ErrnoException).code ?? (err as Error).message}` }], path);
  }
  if (text.trim() === "") throw new ConfigError([{ path: "", message: "the file is empty (a config is a mapping with brokers: [...])" }], path);
  const value = extname(path).toLowerCase() === ".json" ? parseJson(text, path) : parseYaml(text, path);
  if (value === null || value === undefined) throw new ConfigError([{ path: "", message: "the file holds no config (only comments or an empty document)" }], path);
  if (typeof value !== "object" || Array.isArray(value)) {
    throw new ConfigError([{ path: "", message: `the file must hold a mapping (key: value pairs) at the top, not ${kindOf(value)}` }], path);
  }
  const issues = forbiddenKeys(value);
  if (issues.length > 0) throw new ConfigError(issues, path);
  return value;
}

function parseJson(text: string, path: string): unknown {
  try {
    // JSON.parse keeps "__proto__" as an own key (never a prototype); forbiddenKeys reports it.
    return JSON.parse(text) as unknown;
  } catch (err) {
    throw new ConfigError([{ path: "", message: `invalid JSON: ${(err as Error).message}` }], path);
  }
}

function parseYaml(text: string, path: string): unknown {
  const doc = parseDocument(text, { prettyErrors: true, uniqueKeys: true });
  if (doc.errors.length > 0) {
    throw new ConfigError(
      doc.errors.map((e) => ({ path: e.linePos ? `line ${e.linePos[0].line}, column ${e.linePos[0].col}` : "", message: e.message.split("\n")[0]! })),
      path,
    );
  }
  try {
    // yaml defines a "__proto__" key as an own property (never a prototype); forbiddenKeys reports it.
    return doc.toJS({ maxAliasCount: MAX_ALIAS_COUNT }) as unknown;
  } catch (err) {
    const bomb = /alias count/i.test(reasonOf(err));
    throw new ConfigError(
      [{ path: "", message: bomb ? `YAML aliases expand too far (limit ${MAX_ALIAS_COUNT}): refused as a resource exhaustion ("billion laughs") attack` : `cannot read the YAML: ${reasonOf(err)}` }],
      path,
    );
  }
}

/**
 * Every prototype key at any depth, with its path. Iterative, and each object is visited once, so
 * aliased (shared) values and deep nesting cannot blow up. Core's `interpolate` refuses the same keys;
 * this check also protects what reads the file before the runtime does (`geowatch test`).
 */
function forbiddenKeys(value: unknown): ConfigIssue[] {
  const issues: ConfigIssue[] = [];
  const seen = new Set<object>();
  const todo: Array<[unknown, string, string?]> = [[value, ""]];
  while (todo.length > 0) {
    const [v, at, bad] = todo.pop()!;
    if (bad !== undefined) {
      issues.push({ path: at, message: `key "${bad}" is not allowed (it names an object prototype member; a config holds own data only)` });
      continue;
    }
    if (v === null || typeof v !== "object" || seen.has(v)) continue;
    seen.add(v);
    if (Array.isArray(v)) {
      for (let i = v.length - 1; i >= 0; i--) todo.push([v[i], `${at}[${i}]`]);
      continue;
    }
    const keys = Object.keys(v);
    for (let i = keys.length - 1; i >= 0; i--) {
      const k = keys[i]!;
      const p = at ? `${at}.${k}` : k;
      todo.push(FORBIDDEN_KEYS.has(k) ? [undefined, p, k] : [(v as Record<string, unknown>)[k], p]);
    }
  }
  return issues;
}

function kindOf(value: unknown): string {
  if (Array.isArray(value)) return "a list";
  return `a ${typeof value} (${JSON.stringify(value).slice(0, 40)})`;
}
