/**
 * XLSX written as a stream: an XLSX is a ZIP of XML parts, so the sheet XML is produced row by row into an
 * inner ZIP whose output is itself an entry of the packager's ZIP. Only the current page is in memory.
 * Past Excel's 1,048,576 rows a sheet, rows continue on the next sheet (with the header again).
 */
import type { Field } from "../sources/datastore.js";
import { ZipEntries } from "../zip.js";
import type { EntrySink } from "../zip.js";
import { cellText, visibleFields } from "./types.js";
import type { RowWriter, WriterContext } from "./types.js";

const MAX_ROWS = 1_048_576;
const MAX_CELL = 32_767;
const NUMERIC = /^(int|int2|int4|int8|integer|bigint|smallint|float|float4|float8|numeric|double precision|real|number)$/i;
// XML 1.0 forbids most control characters; Excel also refuses them.
const BAD_XML = /[\u0000-\u0008\u000B\u000C\u000E-\u001F\uFFFE\uFFFF]/g;

const esc = (s: string) => s.replace(BAD_XML, "").replace(/&/g, "&amp;").replace(/</g, "&lt;").replace(/>/g, "&gt;");

function colName(i: number): string {
  let n = i + 1;
  let s = "";
  while (n > 0) {
    const m = (n - 1) % 26;
    s = String.fromCharCode(65 + m) + s;
    n = Math.floor((n - 1) / 26);
  }
  return s;
}

const SHEET_HEAD = '<?xml version="1.0" encoding="UTF-8" standalone="yes"?>\n<worksheet xmlns="http://schemas.openxmlformats.org/spreadsheetml/2006/main"><sheetData>';
const SHEET_TAIL = "</sheetData></worksheet>";

export function xlsxWriter(ctx: WriterContext): RowWriter {
  const inner = new ZipEntries(6);
  let sheet: EntrySink | undefined;
  let sheets = 0;
  let rowInSheet = 0;
  let cols: number[] = [];
  let letters: string[] = [];
  let numeric: boolean[] = [];
  let header = "";

  const cell = (ref: string, v: unknown, isNum: boolean): string => {
    if (v === null || v === undefined || v === "") return "";
    if (isNum) {
      const n = typeof v === "number" ? v : Number(v);
      if (Number.isFinite(n)) return `<c r="${ref}"><v>${n}</v></c>`;
    }
    let s = cellText(v);
    if (s.length > MAX_CELL) s = s.slice(0, MAX_CELL);
    return `<c r="${ref}" t="inlineStr"><is><t xml:space="preserve">${esc(s)}</t></is></c>`;
  };
  const newSheet = async () => {
    if (sheet) {
      await sheet.write(SHEET_TAIL);
      sheet.end();
    }
    sheets++;
    sheet = inner.entry(`xl/worksheets/sheet${sheets}.xml`);
    rowInSheet = 1;
    await sheet.write(`${SHEET_HEAD}<row r="1">${header}</row>`);
  };

  return {
    async begin(fields: Field[]) {
      ctx.zip.stream(inner.output, `${ctx.name}.xlsx`);
      cols = visibleFields(fields);
      letters = cols.map((_, j) => colName(j));
      numeric = cols.map((i) => NUMERIC.test(fields[i]!.type));
      header = cols.map((i, j) => cell(`${letters[j]}1`, fields[i]!.id, false)).join("");
      await newSheet();
    },
    async write(rows) {
      let out = "";
      for (const row of rows) {
        if (rowInSheet >= MAX_ROWS) {
          await sheet!.write(out);
          out = "";
          await newSheet();
        }
        const r = ++rowInSheet;
        out += `<row r="${r}">`;
        for (let j = 0; j < cols.length; j++) out += cell(`${letters[j]}${r}`, row[cols[j]!], numeric[j]!);
        out += "</row>";
      }
      await sheet!.write(out);
    },
    async end() {
      await sheet!.write(SHEET_TAIL);
      sheet!.end();
      const ids = Array.from({ length: sheets }, (_, k) => k + 1);
      inner.buffer(
        `<?xml version="1.0" encoding="UTF-8" standalone="yes"?>\n<Types xmlns="http://schemas.openxmlformats.org/package/2006/content-types"><Default Extension="rels" ContentType="application/vnd.openxmlformats-package.relationships+xml"/><Default Extension="xml" ContentType="application/xml"/><Override PartName="/xl/workbook.xml" ContentType="application/vnd.openxmlformats-officedocument.spreadsheetml.sheet.main+xml"/>${ids.map((k) => `<Override PartName="/xl/worksheets/sheet${k}.xml" ContentType="application/vnd.openxmlformats-officedocument.spreadsheetml.worksheet+xml"/>`).join("")}</Types>`,
        "[Content_Types].xml",
      );
      inner.buffer(
        '<?xml version="1.0" encoding="UTF-8" standalone="yes"?>\n<Relationships xmlns="http://schemas.openxmlformats.org/package/2006/relationships"><Relationship Id="rId1" Type="http://schemas.openxmlformats.org/officeDocument/2006/relationships/officeDocument" Target="xl/workbook.xml"/></Relationships>',
        "_rels/.rels",
      );
      inner.buffer(
        `<?xml version="1.0" encoding="UTF-8" standalone="yes"?>\n<workbook xmlns="http://schemas.openxmlformats.org/spreadsheetml/2006/main" xmlns:r="http://schemas.openxmlformats.org/officeDocument/2006/relationships"><sheets>${ids.map((k) => `<sheet name="${k === 1 ? "data" : `data ${k}`}" sheetId="${k}" r:id="rId${k}"/>`).join("")}</sheets></workbook>`,
        "xl/workbook.xml",
      );
      inner.buffer(
        `<?xml version="1.0" encoding="UTF-8" standalone="yes"?>\n<Relationships xmlns="http://schemas.openxmlformats.org/package/2006/relationships">${ids.map((k) => `<Relationship Id="rId${k}" Type="http://schemas.openxmlformats.org/officeDocument/2006/relationships/worksheet" Target="worksheets/sheet${k}.xml"/>`).join("")}</Relationships>`,
        "xl/_rels/workbook.xml.rels",
      );
      inner.end();
    },
  };
}
