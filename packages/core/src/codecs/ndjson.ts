import type { Codec, Payload } from "../types.js";
import { parseJson, payloadText, splitLines, stringifyJson } from "./text.js";

const NAME = "ndjson";

/**
 * Newline-delimited JSON: one JSON value per line. Packed bodies end every line with `\n`, so bodies
 * concatenate (appendable). Blank lines are skipped on unpack.
 */
export const ndjsonCodec: Codec<unknown> = {
  name: NAME,
  contentType: "application/x-ndjson",
  appendable: true,
  jsonText: true,
  encode(value: unknown): Payload {
    // JSON.stringify without indentation never emits a raw line break.
    return stringifyJson(value, NAME);
  },
  decode(payload: Payload): unknown {
    return parseJson(payloadText(payload, NAME), NAME);
  },
  pack(values: unknown[]): Payload {
    let out = "";
    for (const value of values) out += stringifyJson(value, NAME) + "\n";
    return out;
  },
  unpack(payload: Payload): unknown[] {
    const lines = splitLines(payloadText(payload, NAME));
    const values: unknown[] = [];
    for (let i = 0; i < lines.length; i++) {
      const line = lines[i]!;
      if (line.trim() === "") continue;
      values.push(parseJson(line, NAME, `line ${i + 1}: `));
    }
    return values;
  },
};
