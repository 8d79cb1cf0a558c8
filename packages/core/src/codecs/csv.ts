import { z } from "zod";
import type { Codec, Payload } from "../types.js";
import { type FieldRecord, fieldsRecord, recordFields, setField } from "./fields.js";
import { fieldsSchema, parseOptions } from "./options.js";
import { decodeError, encodeError, kindOf, payloadText } from "./text.js";

const NAME = "csv";

/** Options of the csv codec (RFC 4180). */
export interface CsvOptions {
  /**
   * The first row names the columns and values are objects. A packed body then starts with one
   * header row, so it is not appendable. Default: false.
   */
  header?: boolean;
  /**
   * Column names in order. Without a header, values are objects written and read in this order;
   * with a header, it is the header written (default: the keys of the values in first-seen order).
   * Default: unset (values are arrays of fields).
   */
  fields?: string[];
  /** One character between fields; not a quote or line break. Default: ",". */
  delimiter?: string;
  /** Line break written after each record; both are read. Default: "\r\n" (RFC 4180). */
  eol?: "\r\n" | "\n";
}

const schema = z.strictObject({
  header: z.boolean().default(false),
  fields: fieldsSchema.optional(),
  delimiter: z
    .string()
    .length(1, "must be one character")
    .refine((d) => !/["\r\n]/.test(d), "cannot be a quote or a line break")
    .default(","),
  eol: z.enum(["\r\n", "\n"]).default("\r\n"),
});

interface Rows {
  rows: string[][];
  /** Line each row starts on. */
  lines: number[];
}

/** RFC 4180 records; blank lines are skipped, LF, CRLF and CR all end a record outside quotes. */
function parseCsv(text: string, delimiter: string): Rows {
  const D = delimiter.charCodeAt(0);
  const n = text.length;
  const rows: string[][] = [];
  const lines: number[] = [];
  let i = 0;
  let line = 1;
  let lineStart = 0;
  const fail = (at: number, message: string) =>
    decodeError(NAME, `line ${line} column ${at - lineStart + 1}: ${message}`, `line ${line}`);
  while (i < n) {
    const c0 = text.charCodeAt(i);
    if (c0 === 10 || c0 === 13) {
      i += c0 === 13 && text.charCodeAt(i + 1) === 10 ? 2 : 1;
      line++;
      lineStart = i;
      continue;
    }
    const row: string[] = [];
    lines.push(line);
    for (;;) {
      if (text.charCodeAt(i) === 34) {
        const openLine = line;
        const openColumn = i - lineStart + 1;
        let value = "";
        let start = ++i;
        for (;;) {
          const q = text.indexOf('"', i);
          if (q < 0) {
            throw decodeError(NAME, `line ${openLine} column ${openColumn}: quoted field is never closed`, `line ${openLine}`);
          }
          for (let k = i; k < q; k++) {
            if (text.charCodeAt(k) === 10) {
              line++;
              lineStart = k + 1;
            }
          }
          if (text.charCodeAt(q + 1) === 34) {
            value += text.slice(start, q + 1);
            i = start = q + 2;
            continue;
          }
          value += text.slice(start, q);
          i = q + 1;
          break;
        }
        const c = text.charCodeAt(i);
        if (i < n && c !== D && c !== 10 && c !== 13) {
          throw fail(i, `unexpected ${JSON.stringify(text[i])} after a closing quote (write a quote inside a field as "")`);
        }
        row.push(value);
      } else {
        let j = i;
        for (; j < n; j++) {
          const c = text.charCodeAt(j);
          if (c === D || c === 10 || c === 13) break;
          if (c === 34) throw fail(j, "quote inside an unquoted field (quote the field and write the quote as \"\")");
        }
        row.push(text.slice(i, j));
        i = j;
      }
      if (i < n && text.charCodeAt(i) === D) {
        i++;
        continue;
      }
      if (i < n) {
        i += text.charCodeAt(i) === 13 && text.charCodeAt(i + 1) === 10 ? 2 : 1;
        line++;
        lineStart = i;
      }
      break;
    }
    rows.push(row);
  }
  return { rows, lines };
}

/** Column names from a header row; duplicates would make fields overwrite each other. */
function headerColumns(row: string[], line: number): string[] {
  const seen = new Set<string>();
  for (const name of row) {
    if (seen.has(name)) throw decodeError(NAME, `line ${line}: duplicate column ${JSON.stringify(name)} in the header`, `line ${line}`);
    seen.add(name);
  }
  return row;
}

/**
 * CSV (RFC 4180): fields with the delimiter, quotes or line breaks are quoted and quotes doubled.
 * Without a header a value is an array of fields (or an object in `fields` order) and packed bodies
 * concatenate. With `header: true` a value is an object; a message is the header row plus one row,
 * and a packed body is one header row followed by every row.
 */
export function csvCodec(options?: CsvOptions): Codec<FieldRecord> {
  const { header, fields, delimiter, eol } = parseOptions(schema, options, NAME);
  const special = new RegExp(`["\\r\\n${delimiter.replace(/[\\^\]-]/g, "\\$&")}]`);

  const quote = (text: string): string => (special.test(text) ? `"${text.replaceAll('"', '""')}"` : text);
  const row = (cells: string[]): string =>
    // A lone empty field would be a blank line, which readers skip.
    cells.length === 1 && cells[0] === "" ? '""' : cells.map(quote).join(delimiter);

  /** Header columns for `values`: the fields option, or every key in first-seen order. */
  const columnsOf = (values: FieldRecord[]): string[] => {
    if (fields) return fields;
    const seen = new Set<string>();
    for (let i = 0; i < values.length; i++) {
      const value = values[i];
      if (typeof value !== "object" || value === null || Array.isArray(value)) {
        throw encodeError(NAME, `value ${i}: with a header, expected an object, got ${kindOf(value)}`);
      }
      for (const key of Object.keys(value)) seen.add(key);
    }
    return [...seen];
  };
  const objectRow = (value: FieldRecord, columns: string[]): string => {
    if (Array.isArray(value)) throw encodeError(NAME, "with a header, expected an object, got an array");
    return row(recordFields(value, columns, NAME));
  };

  const toRecords = (text: string): FieldRecord[] => {
    const { rows, lines } = parseCsv(text, delimiter);
    if (!header) return rows.map((r, k) => fieldsRecord(r, fields, NAME, lines[k]!));
    if (rows.length === 0) return [];
    const columns = headerColumns(rows[0]!, lines[0]!);
    const records: FieldRecord[] = [];
    for (let k = 1; k < rows.length; k++) {
      const r = rows[k]!;
      if (r.length !== columns.length) {
        const l = lines[k]!;
        throw decodeError(NAME, `line ${l}: expected ${columns.length} fields as in the header, got ${r.length}`, `line ${l}`);
      }
      const record: Record<string, string> = {};
      for (let c = 0; c < columns.length; c++) setField(record, columns[c]!, r[c]!);
      records.push(record);
    }
    return records;
  };

  return {
    name: NAME,
    contentType: `text/csv; charset=utf-8; header=${header ? "present" : "absent"}`,
    appendable: !header,
    encode(value: FieldRecord): Payload {
      if (!header) return row(recordFields(value, fields, NAME));
      const columns = columnsOf([value]);
      return row(columns) + eol + objectRow(value, columns);
    },
    decode(payload: Payload): FieldRecord {
      const text = payloadText(payload, NAME);
      const records = toRecords(text);
      if (records.length === 1) return records[0]!;
      if (records.length === 0) {
        if (!header && !fields) return [];
        throw decodeError(NAME, header ? "expected a header row and one record, got no record" : "empty record");
      }
      const second = parseCsv(text, delimiter).lines[header ? 2 : 1]!;
      throw decodeError(NAME, `expected one record, got ${records.length} (another starts on line ${second}; use unpack for a body of many)`, `line ${second}`);
    },
    pack(values: FieldRecord[]): Payload {
      let out = "";
      if (header) {
        if (values.length === 0) return "";
        const columns = columnsOf(values);
        out = row(columns) + eol;
        for (const value of values) out += objectRow(value, columns) + eol;
        return out;
      }
      for (const value of values) out += row(recordFields(value, fields, NAME)) + eol;
      return out;
    },
    unpack(payload: Payload): FieldRecord[] {
      return toRecords(payloadText(payload, NAME));
    },
  };
}
