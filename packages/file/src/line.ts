import { GeoWatchError } from "@geowatch/core";
import type { Payload } from "@geowatch/core";

// ignoreBOM: a leading BOM is part of the value and is written, not dropped.
const utf8 = new TextDecoder("utf-8", { fatal: true, ignoreBOM: true });
/** In `u` mode a surrogate pair is one code point, so this matches only unpaired surrogates. */
const LONE_SURROGATE = /\p{Cs}/u;

/**
 * One record value as one NDJSON line (without its newline). The rule:
 * - the value is read as UTF-8 text (bytes that are not valid UTF-8, and strings with lone surrogates, are refused);
 * - text that is one line (no `\n` or `\r`) of valid JSON, and not itself a JSON string, is written as is;
 * - any other text (several lines, not JSON, or a JSON string) is written as a JSON string literal.
 * `fromLine` undoes it exactly: a line starting with `"` is a JSON string whose content is the value.
 * With `jsonText` (the record's codec says its values are JSON text on one line) the checks are skipped.
 */
export function toLine(value: Payload, jsonText = false): string {
  // JSON text on one line, as the encoding codec vouches (`OutRecord.jsonText`): written as is, unless it is a
  // JSON string (the rule above writes those as a string literal of their text).
  if (jsonText && typeof value === "string" && value.length > 0 && value.charCodeAt(0) !== 34) return value;
  let text: string;
  try {
    text = typeof value === "string" ? value : utf8.decode(value);
  } catch (cause) {
    throw new GeoWatchError("ENCODE", "record value is not valid UTF-8 text", { backend: "file", cause });
  }
  const lone = loneSurrogateAt(text);
  if (lone >= 0) {
    throw new GeoWatchError("ENCODE", `record value is not valid Unicode text (lone surrogate at index ${lone})`, { backend: "file", path: `index ${lone}` });
  }
  if (!/[\n\r]/.test(text) && !text.trimStart().startsWith('"') && isJson(text)) return text;
  return JSON.stringify(text);
}

/** The record value a line holds (see `toLine`); the consumer hands lines that are not UTF-8 on as bytes. */
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

/**
 * Index of the first unpaired surrogate in `text`, or -1. Such a string has no UTF-8 form: Node would
 * write U+FFFD in its place, so writers refuse it instead.
 */
export function loneSurrogateAt(text: string): number {
  return LONE_SURROGATE.exec(text)?.index ?? -1;
}
