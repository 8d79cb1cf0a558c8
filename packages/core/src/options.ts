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

/** Every problem of `options` against `schema`, each unknown key on its own path. */
export function optionProblems(schema: OptionSchema, options: unknown): OptionProblem[] {
  const res = schema.safeParse(options);
  if (res.success) return [];
  return res.error.issues.flatMap((issue) => {
    const base = issue.path.map(String).join(".");
    if (issue.code === "unrecognized_keys" && issue.keys) {
      return issue.keys.map((k) => ({ path: base ? `${base}.${k}` : k, message: "unknown option" }));
    }
    return [{ path: base || "(root)", message: issue.message }];
  });
}

/** Parses options or throws one CONFIG error listing every problem with its path. */
export function parseOptions<T>(schema: OptionSchema<T>, options: unknown, what: string, backend: string): T {
  const res = schema.safeParse(options);
  if (res.success) return res.data;
  const problems = optionProblems(schema, options);
  const list = problems.map((p) => `${p.path}: ${p.message}`).join("; ");
  throw new GeoWatchError("CONFIG", `invalid ${what} options: ${list}`, { backend, path: problems[0]?.path });
}
