import type { z } from "zod";
import { formatPath, issueMessage } from "./config.js";
import { knownOptionsAt } from "./define.js";
import { GeoWatchError } from "./errors.js";

/** One problem in a backend's or stage's options, with its dotted path. */
export interface OptionProblem {
  path: string;
  message: string;
}

/** The part of a zod (v4) schema this needs, so backends keep their own zod import. */
export interface OptionSchema<T = unknown> {
  safeParse(value: unknown):
    | { success: true; data: T }
    | { success: false; error: { issues: ReadonlyArray<{ code: string; path: ReadonlyArray<PropertyKey>; message: string; keys?: string[] }> } };
}

/** Every problem of `options` against `schema`, each unknown key on its own path with the known ones. */
export function optionProblems(schema: OptionSchema, options: unknown): OptionProblem[] {
  const res = schema.safeParse(options);
  if (res.success) return [];
  return res.error.issues.flatMap((issue) => {
    if (issue.code === "unrecognized_keys" && issue.keys) {
      const known = isZod(schema) ? knownOptionsAt(schema, issue.path).join(", ") : "";
      return issue.keys.map((k) => ({ path: formatPath([...issue.path, k]), message: known ? `unknown option (known: ${known})` : "unknown option" }));
    }
    return [{ path: formatPath(issue.path) || "(root)", message: issueMessage(issue) }];
  });
}

function isZod(s: unknown): s is z.ZodType {
  return typeof s === "object" && s !== null && "_zod" in s;
}

/** Parses options or throws one CONFIG error listing every problem with its path. */
export function parseOptions<T>(schema: OptionSchema<T>, options: unknown, what: string, backend: string): T {
  const res = schema.safeParse(options);
  if (res.success) return res.data;
  const problems = optionProblems(schema, options);
  const list = problems.map((p) => `${p.path}: ${p.message}`).join("; ");
  throw new GeoWatchError("CONFIG", `invalid ${what} options: ${list}`, { backend, path: problems[0]?.path });
}
