import { readFileSync } from "node:fs";
import { extname } from "node:path";
import { parseDocument } from "yaml";
import { ConfigError } from "@geowatch/core";

/** Reads a YAML or JSON config file; syntax errors become a ConfigError naming the line and column. */
export function loadConfigFile(path: string): unknown {
  let text: string;
  try {
    text = readFileSync(path, "utf8");
  } catch (err) {
    throw new ConfigError([{ path: "", message: `cannot read ${path}: ${(err as NodeJS.ErrnoException).code ?? (err as Error).message}` }], path);
  }
  if (extname(path).toLowerCase() === ".json") {
    try {
      return JSON.parse(text) as unknown;
    } catch (err) {
      throw new ConfigError([{ path: "", message: `invalid JSON: ${(err as Error).message}` }], path);
    }
  }
  const doc = parseDocument(text, { prettyErrors: true, uniqueKeys: true });
  if (doc.errors.length > 0) {
    throw new ConfigError(
      doc.errors.map((e) => ({ path: e.linePos ? `line ${e.linePos[0].line}, column ${e.linePos[0].col}` : "", message: e.message.split("\n")[0]! })),
      path,
    );
  }
  return doc.toJS({ maxAliasCount: 100 }) as unknown;
}
