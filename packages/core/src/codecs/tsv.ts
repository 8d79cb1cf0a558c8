import { z } from "zod";
import type { Codec, Payload } from "../types.js";
import { type FieldRecord, fieldsRecord, recordFields } from "./fields.js";
import { fieldsSchema, parseOptions } from "./options.js";
import { decodeError, payloadText, splitLines } from "./text.js";

/** Options of the tsv (list) codec. */
export interface TsvOptions {
  /**
   * Field names in column order. When set, values are objects read and written in this order;
   * otherwise values are arrays of fields. Default: unset.
   */
  fields?: string[];
}

const schema = z.strictObject({ fields: fieldsSchema.optional() });

const SPECIAL = /[\t\n\r\\]/;
const ESCAPES: Record<string, string> = { "\t": "\\t", "\n": "\\n", "\r": "\\r", "\\": "\\\\" };
const UNESCAPES: Record<string, string> = { t: "\t", n: "\n", r: "\r", "\\": "\\" };

function escapeField(text: string): string {
  return SPECIAL.test(text) ? text.replace(/[\t\n\r\\]/g, (c) => ESCAPES[c]!) : text;
}

/** Splits one line into unescaped fields; `line` numbers the messages. */
function parseLine(text: string, codec: string, line: number): string[] {
  const fields = text.split("\t");
  let column = 1;
  for (let f = 0; f < fields.length; f++) {
    const raw = fields[f]!;
    if (raw.includes("\\")) {
      let out = "";
      for (let i = 0; i < raw.length; i++) {
        const c = raw[i]!;
        if (c !== "\\") {
          out += c;
          continue;
        }
        const next = raw[i + 1];
        const plain = next === undefined ? undefined : UNESCAPES[next];
        if (plain === undefined) {
          const what = next === undefined ? "a backslash at the end of a field" : `unknown escape "\\${next}"`;
          throw decodeError(codec, `line ${line} column ${column + i}: ${what} (escapes are \\t \\n \\r \\\\)`, `line ${line}`);
        }
        out += plain;
        i++;
      }
      fields[f] = out;
    }
    column += raw.length + 1;
  }
  return fields;
}

/** Builds a tsv codec under `name` (the registry also offers it as `list`). */
export function createTsvCodec(options: TsvOptions | undefined, name: string): Codec<FieldRecord> {
  const { fields: columns } = parseOptions(schema, options, name);
  const encode = (value: FieldRecord): string => recordFields(value, columns, name).map(escapeField).join("\t");
  return {
    name,
    contentType: "text/tab-separated-values; charset=utf-8",
    appendable: true,
    encode,
    decode(payload: Payload): FieldRecord {
      const lines = splitLines(payloadText(payload, name));
      if (lines.length > 1) {
        throw decodeError(name, `expected one line, got ${lines.length} (line breaks in fields are written \\n)`, "line 2");
      }
      return fieldsRecord(parseLine(lines[0] ?? "", name, 1), columns, name, 1);
    },
    pack(values: FieldRecord[]): Payload {
      let out = "";
      for (const value of values) out += encode(value) + "\n";
      return out;
    },
    unpack(payload: Payload): FieldRecord[] {
      const lines = splitLines(payloadText(payload, name));
      return lines.map((text, i) => fieldsRecord(parseLine(text, name, i + 1), columns, name, i + 1));
    },
  };
}

/**
 * Tab-separated fields, one record per line (the original GeoWatch list codec). Tabs, line breaks
 * and backslashes inside fields are escaped as `\t`, `\n`, `\r`, `\\`. Packed bodies are lines and
 * concatenate (appendable).
 */
export function tsvCodec(options?: TsvOptions): Codec<FieldRecord> {
  return createTsvCodec(options, "tsv");
}
