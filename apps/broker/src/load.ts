import { readFileSync } from "node:fs";
import { extname } from "node:path";
import { parseDocument } from "yaml";
import { checkForbiddenKeys, ConfigError, reasonOf, type ConfigIssue } from "@geowatch/core";

/** Most alias expansions a YAML file may make: enough for shared defaults, far too few for a "billion laughs". */
const MAX_ALIAS_COUNT = 100;

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

function forbiddenKeys(value: unknown): ConfigIssue[] {
  const issues: ConfigIssue[] = [];
  checkForbiddenKeys(value, issues);
  return issues;
}

function kindOf(value: unknown): string {
  if (Array.isArray(value)) return "a list";
  return `a ${typeof value} (${JSON.stringify(value).slice(0, 40)})`;
}
