import { readFileSync } from "node:fs";
import { z } from "zod";
import { GeoWatchError, reasonOf } from "../errors.js";
import type { Codec, Metadata, Payload } from "../types.js";
import { parseOptions } from "./options.js";
import { type CompiledTemplate, type TemplateEscape, compileTemplate } from "./template-engine.js";
import { payloadText } from "./text.js";

const NAME = "template";

/** Options of the template codec. */
export interface TemplateCodecOptions {
  /**
   * Templates by key: `"<actiontype>.<targettype>"`, `"<actiontype>.*"`, `"*.<targettype>"` or
   * `"default"`, tried in that order for each message. Give this or `templatesFile`. Default: unset.
   */
  templates?: Record<string, string>;
  /**
   * Path of a file holding the templates: a JSON object shaped like `templates`, or plain text that
   * becomes the `default` template. Read once when the codec is built. Default: unset.
   */
  templatesFile?: string;
  /** Escaping of `{{var}}` output. Default: "slack" for `format: slack`, otherwise "none". */
  escape?: TemplateEscape;
  /**
   * `text`: the rendered text. `slack`: a JSON string `{"text"}`. `email`: every template starts
   * with a `Subject: ...` line and the result is a JSON string `{"subject","text"}`. Default: "text".
   */
  format?: "text" | "slack" | "email";
}

/** The template codec: `encode` renders, `decode` returns the payload's text. */
export interface TemplateCodec extends Codec<unknown> {
  /** Renders `value` with an optional record key in the context (`encode` has none to give). */
  render(value: unknown, extra?: { key?: string }): string;
  /** The template key chosen for `metadata`, or undefined when none matches. */
  select(metadata: Metadata | undefined): string | undefined;
}

const schema = z
  .strictObject({
    templates: z.record(z.string(), z.string()).optional(),
    templatesFile: z.string().min(1, "cannot be empty").optional(),
    escape: z.enum(["none", "html", "slack"]).optional(),
    format: z.enum(["text", "slack", "email"]).default("text"),
  })
  .superRefine((o, ctx) => {
    if (o.templates === undefined && o.templatesFile === undefined) {
      ctx.addIssue({ code: "custom", path: ["templates"], message: "give templates or templatesFile" });
    }
    if (o.templates !== undefined && o.templatesFile !== undefined) {
      ctx.addIssue({ code: "custom", path: ["templatesFile"], message: "give templates or templatesFile, not both" });
    }
  });

interface Entry {
  subject?: CompiledTemplate;
  body: CompiledTemplate;
}

const SUBJECT = /^Subject:[ \t]*(.*?)\r?$/;

/**
 * Notification text (Slack, SNS, email) chosen by the envelope's `actiontype` and `targettype`.
 * Templates see `{ metadata, data, value, key }`. Every template is compiled when the codec is
 * built, so a broken template is a CONFIG error at startup, not a dead letter at runtime.
 */
export function templateCodec(options?: TemplateCodecOptions | Record<string, unknown>): TemplateCodec {
  const o = parseOptions(schema, options, NAME);
  const format = o.format;
  const escape: TemplateEscape = o.escape ?? (format === "slack" ? "slack" : "none");
  const sources = o.templates ?? readTemplatesFile(o.templatesFile!);

  const where = o.templates ? "options.templates" : `options.templatesFile ("${o.templatesFile}")`;
  const problems: string[] = [];
  const entries = new Map<string, Entry>();
  for (const [key, source] of Object.entries(sources)) {
    if (key !== "default" && !/^[^.]+\.[^.]+$/.test(key)) {
      problems.push(`${where}: key "${key}": a key is "<actiontype>.<targettype>" (either may be "*") or "default"`);
      continue;
    }
    try {
      entries.set(key, compileEntry(key, source, format, escape));
    } catch (err) {
      problems.push(reasonOf(err).replace(/^\[geowatch\] \[template\] /, ""));
    }
  }
  if (problems.length > 0) {
    throw new GeoWatchError("CONFIG", `invalid templates: ${problems.join("; ")}`, { backend: NAME });
  }
  if (entries.size === 0) throw new GeoWatchError("CONFIG", "no templates given", { backend: NAME });

  const candidates = (meta: Metadata | undefined): string[] => {
    const a = typeof meta?.actiontype === "string" && meta.actiontype !== "" ? meta.actiontype : undefined;
    const t = typeof meta?.targettype === "string" && meta.targettype !== "" ? meta.targettype : undefined;
    const keys: string[] = [];
    if (a !== undefined && t !== undefined) keys.push(`${a}.${t}`);
    if (a !== undefined) keys.push(`${a}.*`);
    if (t !== undefined) keys.push(`*.${t}`);
    keys.push("default");
    return keys;
  };
  const select = (meta: Metadata | undefined) => candidates(meta).find((k) => entries.has(k));

  const render = (value: unknown, extra: { key?: string } = {}): string => {
    const meta = metadataOf(value);
    const key = select(meta);
    if (key === undefined) {
      const tried = candidates(meta);
      throw new GeoWatchError(
        "ENCODE",
        `no template for actiontype ${quote(meta?.actiontype)} targettype ${quote(meta?.targettype)} (tried ${tried.map((k) => `"${k}"`).join(", ")})`,
        { backend: NAME },
      );
    }
    const entry = entries.get(key)!;
    const context: Record<string, unknown> = { metadata: meta ?? {}, value };
    if (meta !== undefined) context.data = (value as { data?: unknown }).data;
    if (extra.key !== undefined) context.key = extra.key;
    const text = entry.body.render(context);
    if (format === "text") return text;
    if (format === "slack") return JSON.stringify({ text });
    // A line break in a subject would start a new mail header.
    const subject = entry.subject!.render(context).replace(/[\r\n]+/g, " ").trim();
    return JSON.stringify({ subject, text });
  };

  return {
    name: NAME,
    contentType: format === "text" ? "text/plain; charset=utf-8" : "application/json",
    appendable: false,
    encode: (value: unknown): Payload => render(value),
    decode: (payload: Payload): unknown => payloadText(payload, NAME),
    render,
    select,
  };
}

function compileEntry(key: string, source: string, format: "text" | "slack" | "email", escape: TemplateEscape): Entry {
  if (format !== "email") return { body: compileTemplate(source, { name: key, escape, backend: NAME }) };
  const eol = source.indexOf("\n");
  const first = eol < 0 ? source : source.slice(0, eol);
  const m = SUBJECT.exec(first);
  if (!m) throw new GeoWatchError("CONFIG", `template "${key}" line 1: an email template starts with a "Subject: ..." line`, { backend: NAME });
  let body = eol < 0 ? "" : source.slice(eol + 1);
  let line = 2;
  // The blank line that conventionally separates the subject from the body is not part of the text.
  const blank = /^\r?\n/.exec(body);
  if (blank) {
    body = body.slice(blank[0].length);
    line = 3;
  }
  return {
    // Mail subjects are plain text whatever the body's escaping.
    subject: compileTemplate(m[1]!, { name: `${key} (subject)`, escape: "none", backend: NAME }),
    body: compileTemplate(body, { name: key, escape, line, backend: NAME }),
  };
}

function readTemplatesFile(path: string): Record<string, string> {
  let text: string;
  try {
    text = readFileSync(path, "utf8");
  } catch (err) {
    throw new GeoWatchError("CONFIG", `options.templatesFile: cannot read "${path}": ${reasonOf(err)}`, { backend: NAME, cause: err });
  }
  if (!text.trimStart().startsWith("{")) return { default: text };
  let parsed: unknown;
  try {
    parsed = JSON.parse(text);
  } catch (err) {
    throw new GeoWatchError("CONFIG", `options.templatesFile: "${path}" is not valid JSON: ${reasonOf(err).replace(/\r?\n/g, " ")}`, { backend: NAME, cause: err });
  }
  const bad = Object.entries(parsed as Record<string, unknown>).filter(([, v]) => typeof v !== "string");
  if (parsed === null || Array.isArray(parsed) || bad.length > 0) {
    throw new GeoWatchError(
      "CONFIG",
      `options.templatesFile: "${path}" must be a JSON object of template strings${bad.length ? ` (not a string: ${bad.map(([k]) => `"${k}"`).join(", ")})` : ""}`,
      { backend: NAME },
    );
  }
  return parsed as Record<string, string>;
}

/** The metadata of a `{metadata, data}` envelope, if the value is one. */
function metadataOf(value: unknown): Metadata | undefined {
  if (value === null || typeof value !== "object" || Array.isArray(value) || !Object.hasOwn(value, "data") || !Object.hasOwn(value, "metadata")) return undefined;
  const meta = (value as { metadata?: unknown }).metadata;
  return meta !== null && typeof meta === "object" && !Array.isArray(meta) ? (meta as Metadata) : undefined;
}

function quote(v: unknown): string {
  return typeof v === "string" ? `"${v}"` : "(none)";
}
