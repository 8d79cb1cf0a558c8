import type { Field } from "../sources/datastore.js";
import type { ZipEntries } from "../zip.js";

/** Writes rows of one resource into a ZIP; `begin` once, `write` per page, `end` once. */
export interface RowWriter {
  begin(fields: Field[]): Promise<void>;
  write(rows: unknown[][]): Promise<void>;
  end(): Promise<void>;
  /** Removes temp files after a failure. */
  abort?(): Promise<void>;
}

export interface WriterContext {
  zip: ZipEntries;
  /** Base name of the entries (the resource id). */
  name: string;
  tempDir: string;
  /** Temp files the ZIP reads when it is written out: removed after the commit. */
  cleanup?: string[];
}

/** Fields written out: CKAN's internal full-text column is dropped. */
export const visibleFields = (fields: Field[]): number[] => fields.flatMap((f, i) => (f.id === "_full_text" ? [] : [i]));

/** A cell as text: null as empty, objects and arrays as JSON. */
export function cellText(v: unknown): string {
  if (v === null || v === undefined) return "";
  if (typeof v === "string") return v;
  if (typeof v === "object") return JSON.stringify(v);
  return String(v);
}
