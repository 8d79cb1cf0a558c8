import { GeoWatchError } from "./errors.js";
import { getPath } from "./util.js";

const FIELD = /\{([A-Za-z_][\w.-]*)\}/g;

/**
 * Renders `{field}` and `{a.b.c}` placeholders from a context object. No expressions, no code: a
 * placeholder is a path, nothing else. A missing field is an error that names it.
 */
export function renderKey(template: string, context: Record<string, unknown>, what = "template"): string {
  if (!template.includes("{")) return template;
  return template.replace(FIELD, (_, path: string) => {
    const v = getPath(context, path);
    if (v === undefined || v === null) {
      throw new GeoWatchError("VALIDATE", `${what} "${template}" needs field "${path}", which the message does not have`, { path });
    }
    return typeof v === "object" ? JSON.stringify(v) : String(v);
  });
}
