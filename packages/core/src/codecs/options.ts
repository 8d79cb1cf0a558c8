import { z } from "zod";
import { GeoWatchError } from "../errors.js";

/** Parses codec options with `schema`; a CONFIG error lists every problem with its path. */
export function parseOptions<S extends z.ZodType>(schema: S, options: unknown, codec: string): z.output<S> {
  const result = schema.safeParse(options ?? {});
  if (result.success) return result.data;
  const problems = result.error.issues.map((issue) => {
    let path = "options";
    for (const seg of issue.path) path += typeof seg === "number" ? `[${seg}]` : `.${String(seg)}`;
    return `${path}: ${issue.message}`;
  });
  throw new GeoWatchError("CONFIG", `invalid codec options: ${problems.join("; ")}`, { backend: codec });
}

/** Column names: non-empty, unique. */
export const fieldsSchema = z
  .array(z.string().min(1, "a field name cannot be empty"))
  .min(1, "list at least one field")
  .refine((fields) => new Set(fields).size === fields.length, "field names must be unique");
