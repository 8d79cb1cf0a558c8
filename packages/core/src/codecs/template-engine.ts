import { GeoWatchError } from "../errors.js";

/**
 * A small Mustache-like template engine for notification text. Templates are data, never code:
 * a tag names a path into the context and, optionally, a chain of fixed filters. Compile once,
 * render many.
 *
 * - `{{a.b.c}}`, `{{.}}` (the current section item), `{{{raw}}}` / `{{& raw}}` (never escaped)
 * - `{{#a}}...{{/a}}` renders for a truthy value, once per item of a non-empty array
 * - `{{^a}}...{{/a}}` renders when the value is falsy, missing or an empty array
 * - `{{! comment }}`
 * - `{{a | upper | default: "x"}}`; filters: upper, lower, round:n, json, date, length, coords[:n], default:v
 *
 * Path segments `__proto__`, `constructor` and `prototype` are refused when compiling and only own
 * properties are read, so a template cannot reach prototypes. A variable whose value is missing or
 * null is an error naming the field, the template and the line/column, unless it has a `default`.
 * Sections treat a missing value as false: they are how a template tests for presence.
 */

/** How variable output is escaped. `slack` escapes `&`, `<`, `>` as Slack requires; `html` also quotes. */
export type TemplateEscape = "none" | "html" | "slack";

export interface CompileTemplateOptions {
  /** Name shown in errors. Default: "template". */
  name?: string;
  /** Escaping of `{{var}}` output (`{{{var}}}` is never escaped). Default: "none". */
  escape?: TemplateEscape;
  /** Line number of the source's first line, when it is cut from a larger text. Default: 1. */
  line?: number;
  /** Component named in error brackets. Default: "template". */
  backend?: string;
}

/** A compiled template: render it as often as needed. */
export interface CompiledTemplate {
  readonly name: string;
  readonly source: string;
  /** Renders with `context` as the root; throws an ENCODE GeoWatchError naming field and position. */
  render(context: unknown): string;
}

/** The filters a template may use. */
export const TEMPLATE_FILTERS = ["upper", "lower", "round", "json", "date", "length", "coords", "default"] as const;

type FilterName = (typeof TEMPLATE_FILTERS)[number];

/** Path segments that would reach an object's prototype. */
const FORBIDDEN = new Set(["__proto__", "constructor", "prototype"]);
const SEGMENT = /^[A-Za-z0-9_$-]+$/;
const FILTER_NAMES = new Set<string>(TEMPLATE_FILTERS);

interface Filter {
  name: FilterName;
  arg: string | number | undefined;
}

interface VarNode {
  t: "var";
  field: string;
  /** Null for `.`. */
  path: string[] | null;
  filters: Filter[];
  hasDefault: boolean;
  raw: boolean;
  at: number;
}

interface SectionNode {
  t: "section";
  field: string;
  path: string[] | null;
  inverted: boolean;
  children: Node[];
  at: number;
}

type Node = string | VarNode | SectionNode;

const MISSING = Symbol("missing");

/** Escapes `text` for `mode`. */
export function escapeTemplateText(text: string, mode: TemplateEscape): string {
  if (mode === "none" || !/[&<>"']/.test(text)) return text;
  let out = text.replace(/&/g, "&amp;").replace(/</g, "&lt;").replace(/>/g, "&gt;");
  if (mode === "html") out = out.replace(/"/g, "&quot;").replace(/'/g, "&#39;");
  return out;
}

/** Compiles `source`; a CONFIG error (SECURITY for prototype paths) names the template and position. */
export function compileTemplate(source: string, options: CompileTemplateOptions = {}): CompiledTemplate {
  const name = options.name ?? "template";
  const escape = options.escape ?? "none";
  const backend = options.backend ?? "template";
  const firstLine = options.line ?? 1;
  const where = (at: number): { text: string; path: string } => {
    const before = source.slice(0, at);
    const line = before.split("\n").length - 1 + firstLine;
    const column = at - before.lastIndexOf("\n");
    return { text: `template "${name}" line ${line} column ${column}`, path: `${name}:${line}:${column}` };
  };
  const fail = (at: number, message: string, code: "CONFIG" | "SECURITY" = "CONFIG"): GeoWatchError => {
    const w = where(at);
    return new GeoWatchError(code, `${w.text}: ${message}`, { backend, path: w.path });
  };

  const parsePath = (field: string, at: number): string[] | null => {
    if (field === ".") return null;
    const segments = field.split(".");
    for (const seg of segments) {
      if (FORBIDDEN.has(seg)) throw fail(at, `path segment "${seg}" in "${field}" is not allowed (prototype access)`, "SECURITY");
      if (!SEGMENT.test(seg)) throw fail(at, `"${field}" is not a field path (letters, digits, _ $ - joined by dots)`);
    }
    return segments;
  };

  const parseFilter = (text: string, at: number): Filter => {
    const m = /^([A-Za-z]+)\s*(?::\s*(.*))?$/s.exec(text.trim());
    if (!m || !FILTER_NAMES.has(m[1]!)) {
      throw fail(at, `unknown filter "${text.trim()}" (known: ${TEMPLATE_FILTERS.join(", ")})`);
    }
    const fname = m[1] as FilterName;
    const argText = m[2]?.trim();
    let arg: string | number | undefined;
    if (argText !== undefined) {
      if (/^"(?:[^"\\]|\\.)*"$/s.test(argText)) arg = JSON.parse(argText) as string;
      else if (/^'[^']*'$/.test(argText)) arg = argText.slice(1, -1);
      else if (/^-?\d+(?:\.\d+)?$/.test(argText)) arg = Number(argText);
      else throw fail(at, `filter "${fname}" argument must be a quoted string or a number, got ${argText}`);
    }
    if (fname === "default" && arg === undefined) throw fail(at, `filter "default" needs a value: default: "x"`);
    if ((fname === "round" || fname === "coords") && arg !== undefined && !(typeof arg === "number" && Number.isInteger(arg) && arg >= 0 && arg <= 15)) {
      throw fail(at, `filter "${fname}" takes a number of decimals from 0 to 15`);
    }
    if (fname !== "default" && fname !== "round" && fname !== "coords" && arg !== undefined) {
      throw fail(at, `filter "${fname}" takes no argument`);
    }
    return { name: fname, arg };
  };

  /** Splits `a | f: "x|y" | g` on bars outside quotes. */
  const splitPipes = (body: string): string[] => {
    const parts: string[] = [];
    let quote = "";
    let start = 0;
    for (let i = 0; i < body.length; i++) {
      const c = body[i]!;
      if (quote) {
        if (c === "\\" && quote === '"') i++;
        else if (c === quote) quote = "";
      } else if (c === '"' || c === "'") quote = c;
      else if (c === "|") {
        parts.push(body.slice(start, i));
        start = i + 1;
      }
    }
    parts.push(body.slice(start));
    return parts;
  };

  const root: Node[] = [];
  const stack: SectionNode[] = [];
  const out = (): Node[] => stack[stack.length - 1]?.children ?? root;
  let cursor = 0;
  while (cursor < source.length) {
    const open = source.indexOf("{{", cursor);
    if (open < 0) break;
    const triple = source.startsWith("{{{", open);
    const closer = triple ? "}}}" : "}}";
    const close = source.indexOf(closer, open + closer.length);
    if (close < 0) throw fail(open, `tag is never closed (missing "${closer}")`);
    let end = close + closer.length;
    const inner = source.slice(open + closer.length, close);
    const sigil = triple ? "{" : /^[#^/!&]/.test(inner.trimStart()) ? inner.trimStart()[0]! : "";
    const body = (sigil && !triple ? inner.trimStart().slice(1) : inner).trim();
    let textEnd = open;
    // A section or comment tag alone on its line takes the line with it, as in Mustache.
    if (sigil === "#" || sigil === "^" || sigil === "/" || sigil === "!") {
      const lineStart = source.lastIndexOf("\n", open - 1) + 1;
      const eol = source.indexOf("\n", end);
      const lineEnd = eol < 0 ? source.length : eol;
      if (lineStart >= cursor && /^[ \t]*$/.test(source.slice(lineStart, open)) && /^[ \t]*\r?$/.test(source.slice(end, lineEnd))) {
        textEnd = lineStart;
        end = eol < 0 ? source.length : eol + 1;
      }
    }
    if (textEnd > cursor) out().push(source.slice(cursor, textEnd));
    cursor = end;
    if (sigil === "!") continue;
    if (body === "") throw fail(open, "empty tag");
    if (sigil === "#" || sigil === "^") {
      const section: SectionNode = { t: "section", field: body, path: parsePath(body, open), inverted: sigil === "^", children: [], at: open };
      out().push(section);
      stack.push(section);
    } else if (sigil === "/") {
      const top = stack.pop();
      if (!top) throw fail(open, `closing tag "{{/${body}}}" has no open section`);
      if (top.field !== body) {
        throw fail(open, `closing tag "{{/${body}}}" does not match section "${top.field}" opened at ${where(top.at).text.replace(/^template "[^"]*" /, "")}`);
      }
    } else {
      const [field = "", ...rest] = splitPipes(body);
      const filters = rest.map((f) => parseFilter(f, open));
      const fieldName = field.trim();
      if (fieldName === "") throw fail(open, "tag names no field");
      out().push({
        t: "var",
        field: fieldName,
        path: parsePath(fieldName, open),
        filters,
        hasDefault: filters.some((f) => f.name === "default"),
        raw: sigil === "{" || sigil === "&",
        at: open,
      });
    }
  }
  if (cursor < source.length) out().push(source.slice(cursor));
  const unclosed = stack.pop();
  if (unclosed) throw fail(unclosed.at, `section "${unclosed.field}" is never closed (missing "{{/${unclosed.field}}}")`);

  const renderError = (node: VarNode | SectionNode, message: string, cause?: unknown): GeoWatchError => {
    const w = where(node.at);
    return new GeoWatchError("ENCODE", `${w.text}: ${message}`, { backend, path: w.path, cause });
  };

  const lookup = (frames: unknown[], path: string[] | null): unknown => {
    if (path === null) return frames[frames.length - 1];
    const first = path[0]!;
    let cur: unknown = MISSING;
    for (let i = frames.length - 1; i >= 0; i--) {
      const f = frames[i];
      if (f !== null && typeof f === "object" && Object.hasOwn(f, first)) {
        cur = (f as Record<string, unknown>)[first];
        break;
      }
    }
    for (let i = 1; i < path.length && cur !== MISSING; i++) {
      const seg = path[i]!;
      cur = cur !== null && typeof cur === "object" && Object.hasOwn(cur, seg) ? (cur as Record<string, unknown>)[seg] : MISSING;
    }
    return cur;
  };

  const applyFilter = (node: VarNode, f: Filter, v: unknown): unknown => {
    if (f.name === "default") return v === MISSING || v === null || v === undefined || v === "" ? f.arg : v;
    if (v === MISSING || v === null || v === undefined) return v;
    const bad = (what: string) => renderError(node, `filter "${f.name}" on "${node.field}" needs ${what}, got ${describe(v)}`);
    switch (f.name) {
      case "upper":
        return stringify(v).toUpperCase();
      case "lower":
        return stringify(v).toLowerCase();
      case "round": {
        const n = typeof v === "string" && v.trim() !== "" ? Number(v) : v;
        if (typeof n !== "number" || !Number.isFinite(n)) throw bad("a number");
        return String(Number(n.toFixed((f.arg as number | undefined) ?? 0)));
      }
      case "json":
        return JSON.stringify(v);
      case "date": {
        const d = v instanceof Date ? v : typeof v === "string" || typeof v === "number" ? new Date(v) : undefined;
        if (!d || Number.isNaN(d.getTime())) throw bad("a date (ISO text or epoch milliseconds)");
        return d.toISOString();
      }
      case "length":
        if (typeof v === "string" || Array.isArray(v)) return v.length;
        throw bad("a string or an array");
      case "coords": {
        const p = pointOf(v);
        if (!p) throw bad("a GeoJSON Point (or a Feature with one, or [lon, lat])");
        const digits = f.arg as number | undefined;
        const fmt = (x: number) => (digits === undefined ? String(x) : x.toFixed(digits));
        return `${fmt(p[1])}, ${fmt(p[0])}`;
      }
    }
  };

  const renderNodes = (nodes: Node[], frames: unknown[]): string => {
    let s = "";
    for (const node of nodes) {
      if (typeof node === "string") {
        s += node;
      } else if (node.t === "var") {
        let v = lookup(frames, node.path);
        for (const f of node.filters) v = applyFilter(node, f, v);
        if (v === MISSING || v === undefined) throw renderError(node, `field "${node.field}" is missing`);
        if (v === null) throw renderError(node, `field "${node.field}" is null`);
        const text = stringify(v);
        s += node.raw ? text : escapeTemplateText(text, escape);
      } else {
        const v = lookup(frames, node.path);
        const truthy = v !== MISSING && Boolean(v) && !(Array.isArray(v) && v.length === 0);
        if (node.inverted) {
          if (!truthy) s += renderNodes(node.children, frames);
        } else if (truthy) {
          if (Array.isArray(v)) for (const item of v) s += renderNodes(node.children, [...frames, item]);
          else s += renderNodes(node.children, [...frames, v]);
        }
      }
    }
    return s;
  };

  return {
    name,
    source,
    render: (context) => renderNodes(root, [context]),
  };
}

function stringify(v: unknown): string {
  if (typeof v === "string") return v;
  if (typeof v === "object" && v !== null) return JSON.stringify(v);
  return String(v);
}

function describe(v: unknown): string {
  if (Array.isArray(v)) return "an array";
  if (typeof v === "string") return `"${v.length > 40 ? `${v.slice(0, 40)}...` : v}"`;
  return typeof v === "object" ? "an object" : String(v);
}

/** `[lon, lat]` of a GeoJSON Point, a Feature holding one, or a bare position. */
function pointOf(v: unknown): [number, number] | undefined {
  let c: unknown = v;
  if (c !== null && typeof c === "object" && !Array.isArray(c)) {
    const o = c as { type?: unknown; geometry?: unknown; coordinates?: unknown };
    if (o.type === "Feature") return pointOf(o.geometry);
    if (o.type !== "Point") return undefined;
    c = o.coordinates;
  }
  if (!Array.isArray(c) || c.length < 2) return undefined;
  const [lon, lat] = c as unknown[];
  return typeof lon === "number" && typeof lat === "number" && Number.isFinite(lon) && Number.isFinite(lat) ? [lon, lat] : undefined;
}
