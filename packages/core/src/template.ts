import { GeoWatchError } from "./errors.js";

const FIELD = /\{([A-Za-z_][\w.-]*)\}/g;

/** Path segments that would reach an object's prototype: refused outright, whatever the context holds. */
const FORBIDDEN = new Set(["__proto__", "constructor", "prototype"]);

/** The problems of a key template that no message can fix (prototype paths); empty when it is fine. */
export function checkKeyTemplate(template: string): string[] {
  const problems: string[] = [];
  for (const m of template.matchAll(FIELD)) {
    const bad = m[1]!.split(".").find((seg) => FORBIDDEN.has(seg));
    if (bad !== undefined) problems.push(`placeholder "{${m[1]}}" uses "${bad}", which is not allowed (prototype access)`);
  }
  return problems;
}

/**
 * Renders `{field}` and `{a.b.c}` placeholders from a context object. No expressions, no code: a
 * placeholder is a path of own properties, nothing else, so `{constructor}` or `{toString}` never
 * reach Object.prototype. A missing, inherited or null field is an error that names it.
 */
export function renderKey(template: string, context: Record<string, unknown>, what = "template"): string {
  if (!template.includes("{")) return template;
  return template.replace(FIELD, (_, path: string) => {
    let cur: unknown = context;
    for (const seg of path.split(".")) {
      if (FORBIDDEN.has(seg)) {
        throw new GeoWatchError("SECURITY", `${what} "${template}": field "${path}" uses "${seg}", which is not allowed (prototype access)`, { path });
      }
      cur = cur !== null && typeof cur === "object" && Object.hasOwn(cur, seg) ? (cur as Record<string, unknown>)[seg] : undefined;
      if (cur === undefined) break;
    }
    if (cur === undefined || cur === null) {
      throw new GeoWatchError("VALIDATE", `${what} "${template}" needs field "${path}", which the message does not have`, { path });
    }
    return typeof cur === "object" ? JSON.stringify(cur) : String(cur);
  });
}

/**
 * Like renderKey, for optional values (a FIFO group or deduplication id): undefined instead of an error when
 * a field is missing, null or empty, or the result is empty. Prototype paths still throw.
 */
export function renderOptional(template: string, context: Record<string, unknown>, what = "template"): string | undefined {
  let missing = false;
  const out = template.replace(FIELD, (_, path: string) => {
    let cur: unknown = context;
    for (const seg of path.split(".")) {
      if (FORBIDDEN.has(seg)) {
        throw new GeoWatchError("SECURITY", `${what} "${template}": field "${path}" uses "${seg}", which is not allowed (prototype access)`, { path });
      }
      cur = cur !== null && typeof cur === "object" && Object.hasOwn(cur, seg) ? (cur as Record<string, unknown>)[seg] : undefined;
    }
    if (cur === undefined || cur === null || cur === "") missing = true;
    return missing ? "" : typeof cur === "object" ? JSON.stringify(cur) : String(cur);
  });
  return missing || out === "" ? undefined : out;
}
