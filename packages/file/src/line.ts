import { GeoWatchError } from "@geowatch/core";
import type { Payload } from "@geowatch/core";

const utf8 = new TextDecoder("utf-8", { fatal: true });

/**
 * One record value as one NDJSON line (without its newline). The rule:
 * - the value is read as UTF-8 text (bytes that are not valid UTF-8 are refused);
 * - text that is one line (no `\n` or `\r`) of valid JSON, and not itself a JSON string, is written as is;
 * - any other text (several lines, not JSON, or a JSON string) is written as a JSON string literal.
 * `fromLine` undoes it exactly: a line starting with `"` is a JSON string whose content is the value.
 */
export function toLine(value: Payload): string {
  let text: string;
  try {
    text = typeof value === "string" ? value : utf8.decode(value);
  } catch (cause) {
    throw new GeoWatchError("ENCODE", "record value is not valid UTF-8 text", { backend: "file", cause });
  }
  if (!/[\n\r]/.test(text) && !text.trimStart().startsWith('"') && isJson(text)) return text;
  return JSON.stringify(text);
}

/** The record value a line holds (see `toLine`). */
export function fromLine(line: string): string {
  if (line.startsWith('"')) {
    try {
      const v: unknown = JSON.parse(line);
      if (typeof v === "string") return v;
    } catch {
      // Not written by fileProducer: hand the line over as it is.
    }
  }
  return line;
}

function isJson(text: string): boolean {
  if (text.trim() === "") return false;
  try {
    JSON.parse(text);
    return true;
  } catch {
    return false;
  }
}
