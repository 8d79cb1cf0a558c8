/** `{key}`, `{headers.NAME}`, `{metadata.FIELD}` placeholders for FIFO group and deduplication ids. */

const FIELD = /\{([A-Za-z_][\w.-]*)\}/g;

/** Renders the template from own properties of `ctx`; undefined when a field is missing or empty. */
export function fill(template: string, ctx: Record<string, unknown>): string | undefined {
  let missing = false;
  const out = template.replace(FIELD, (_, path: string) => {
    let cur: unknown = ctx;
    for (const seg of path.split(".")) {
      cur = cur !== null && typeof cur === "object" && Object.hasOwn(cur, seg) ? (cur as Record<string, unknown>)[seg] : undefined;
    }
    if (cur === undefined || cur === null || cur === "") {
      missing = true;
      return "";
    }
    return typeof cur === "object" ? JSON.stringify(cur) : String(cur);
  });
  return missing || out === "" ? undefined : out;
}
