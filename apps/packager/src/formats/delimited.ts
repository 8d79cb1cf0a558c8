/** CSV (RFC 4180: quoted when needed, CRLF rows) and TSV (tabs and line breaks inside values become spaces). */
import type { Field } from "../sources/datastore.js";
import type { EntrySink } from "../zip.js";
import { cellText, visibleFields } from "./types.js";
import type { RowWriter, WriterContext } from "./types.js";

const NEEDS_QUOTE = /[",\r\n]/;
const csvCell = (v: unknown) => {
  const s = cellText(v);
  return NEEDS_QUOTE.test(s) || s.startsWith(" ") || s.endsWith(" ") ? `"${s.replace(/"/g, '""')}"` : s;
};
const tsvCell = (v: unknown) => cellText(v).replace(/[\t\r\n]+/g, " ");

export function delimitedWriter(ctx: WriterContext, kind: "csv" | "tsv"): RowWriter {
  const sep = kind === "csv" ? "," : "\t";
  const eol = kind === "csv" ? "\r\n" : "\n";
  const cell = kind === "csv" ? csvCell : tsvCell;
  let sink: EntrySink | undefined;
  let cols: number[] = [];
  return {
    async begin(fields: Field[]) {
      cols = visibleFields(fields);
      sink = ctx.zip.entry(`${ctx.name}.${kind}`);
      await sink.write(cols.map((i) => cell(fields[i]!.id)).join(sep) + eol);
    },
    async write(rows) {
      let out = "";
      for (const row of rows) {
        let line = "";
        for (let j = 0; j < cols.length; j++) {
          if (j) line += sep;
          line += cell(row[cols[j]!]);
        }
        out += line + eol;
      }
      await sink!.write(out);
    },
    async end() {
      sink!.end();
    },
  };
}
