import { decodeError, encodeError, kindOf } from "./text.js";

/** A row as the tsv and csv codecs carry it: an array of fields, or an object keyed by field name. */
export type FieldRecord = unknown[] | Record<string, unknown>;

/** One field as text: strings as they are, numbers and booleans as written, null and undefined empty. */
export function fieldText(value: unknown, codec: string, field: string | number): string {
  if (typeof value === "string") return value;
  if (typeof value === "number" || typeof value === "boolean" || typeof value === "bigint") return String(value);
  if (value === null || value === undefined) return "";
  throw encodeError(codec, `field ${typeof field === "number" ? field : JSON.stringify(field)}: expected text, a number or a boolean, got ${kindOf(value)}`);
}

/** The fields of a record, in `columns` order when given. */
export function recordFields(value: FieldRecord, columns: readonly string[] | undefined, codec: string): string[] {
  if (Array.isArray(value)) {
    if (columns && value.length !== columns.length) {
      throw encodeError(codec, `expected ${columns.length} fields (${columns.join(", ")}), got ${value.length}`);
    }
    return value.map((v, i) => fieldText(v, codec, i));
  }
  if (typeof value !== "object" || value === null) {
    throw encodeError(codec, `expected an array of fields or an object, got ${kindOf(value)}`);
  }
  if (!columns) throw encodeError(codec, "expected an array of fields (set the fields option to encode objects)");
  return columns.map((name) => fieldText(value[name], codec, name));
}

/** Fields as an object keyed by `columns`, or the array itself when there are none. */
export function fieldsRecord(
  fields: string[],
  columns: readonly string[] | undefined,
  codec: string,
  line: number,
): FieldRecord {
  if (!columns) return fields;
  if (fields.length !== columns.length) {
    throw decodeError(codec, `line ${line}: expected ${columns.length} fields (${columns.join(", ")}), got ${fields.length}`, `line ${line}`);
  }
  const record: Record<string, string> = {};
  for (let i = 0; i < columns.length; i++) setField(record, columns[i]!, fields[i]!);
  return record;
}

/** Sets a field without letting a column named `__proto__` replace the record's prototype. */
export function setField(record: Record<string, string>, name: string, value: string): void {
  if (name === "__proto__") Object.defineProperty(record, name, { value, enumerable: true, writable: true, configurable: true });
  else record[name] = value;
}
