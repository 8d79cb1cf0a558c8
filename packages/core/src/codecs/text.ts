import { GeoWatchError } from "../errors.js";
import type { Payload } from "../types.js";

/** One fatal decoder for every codec: invalid UTF-8 is a DECODE error, never U+FFFD. */
const utf8 = new TextDecoder("utf-8", { fatal: true });

/** A DECODE error raised by codec `codec`. */
export function decodeError(codec: string, message: string, path?: string, cause?: unknown): GeoWatchError {
  return new GeoWatchError("DECODE", message, { backend: codec, path, cause });
}

/** An ENCODE error raised by codec `codec`. */
export function encodeError(codec: string, message: string, cause?: unknown): GeoWatchError {
  return new GeoWatchError("ENCODE", message, { backend: codec, cause });
}

/** The payload as text; bytes must be valid UTF-8 (a leading BOM is dropped). */
export function payloadText(payload: Payload, codec: string): string {
  if (typeof payload === "string") return payload;
  try {
    return utf8.decode(payload);
  } catch (err) {
    const at = firstInvalidUtf8(payload);
    throw decodeError(codec, `invalid UTF-8 at byte ${at}`, `byte ${at}`, err);
  }
}

/** Offset of the first byte that breaks UTF-8; only run after the decoder has failed. */
function firstInvalidUtf8(b: Uint8Array): number {
  let i = 0;
  while (i < b.length) {
    const c = b[i]!;
    let n: number;
    let min: number;
    if (c < 0x80) {
      i++;
      continue;
    } else if (c >= 0xc2 && c <= 0xdf) [n, min] = [1, 0x80];
    else if (c >= 0xe0 && c <= 0xef) [n, min] = [2, 0x800];
    else if (c >= 0xf0 && c <= 0xf4) [n, min] = [3, 0x10000];
    else return i;
    let cp = c & (0x3f >> n);
    for (let k = 1; k <= n; k++) {
      const d = b[i + k];
      if (d === undefined || (d & 0xc0) !== 0x80) return i;
      cp = (cp << 6) | (d & 0x3f);
    }
    if (cp < min || cp > 0x10ffff || (cp >= 0xd800 && cp <= 0xdfff)) return i;
    i += n + 1;
  }
  return b.length;
}

/** `JSON.parse` with a DECODE error naming the line and column where the engine reports a position. */
export function parseJson(text: string, codec: string, where = ""): unknown {
  try {
    return JSON.parse(text);
  } catch (err) {
    throw jsonError(text, err, codec, where);
  }
}

function jsonError(text: string, err: unknown, codec: string, where: string): GeoWatchError {
  // V8 quotes the input around the error; keep the message on one line.
  let reason = (err instanceof Error ? err.message : String(err)).replace(/\r?\n|\r/g, "\\n");
  if (text.trim() === "") reason = "empty input";
  else if (!/\bline \d+/.test(reason)) {
    const pos = /at position (\d+)/.exec(reason);
    const at = pos ? Number(pos[1]) : jsonErrorOffset(text);
    if (at >= 0) {
      const before = text.slice(0, at);
      const line = before.split("\n").length;
      reason += ` (line ${line} column ${at - before.lastIndexOf("\n")})`;
    }
  }
  // Inside one line of a multi-line body, the engine's "line 1" is noise next to the body's line.
  if (where) reason = reason.replace(/\(line 1 column (\d+)\)/, "(column $1)");
  return decodeError(codec, `${where}invalid JSON: ${reason}`, where ? where.replace(/: $/, "") : undefined, err);
}

const NUMBER = /-?(?:0|[1-9]\d*)(?:\.\d+)?(?:[eE][+-]?\d+)?/y;
const HEX4 = /[0-9a-fA-F]{4}/y;

/**
 * Offset of the first JSON syntax error in `s`, or -1. Only run after JSON.parse failed without
 * saying where (V8 reports "Unexpected token" without a position).
 */
function jsonErrorOffset(s: string): number {
  let i = 0;
  const ws = () => {
    for (let c = s.charCodeAt(i); c === 32 || c === 9 || c === 10 || c === 13; c = s.charCodeAt(++i));
  };
  const str = (): boolean => {
    for (i++; i < s.length; ) {
      const c = s.charCodeAt(i);
      if (c === 34) return ++i > 0;
      if (c < 0x20) return false;
      if (c !== 92) i++;
      else if ('"\\/bfnrt'.includes(s[i + 1] ?? "x")) i += 2;
      else if (s[i + 1] === "u" && ((HEX4.lastIndex = i + 2), HEX4.test(s))) i += 6;
      else return false;
    }
    return false;
  };
  const value = (): boolean => {
    ws();
    const c = s[i];
    if (c === "{" || c === "[") {
      const close = c === "{" ? "}" : "]";
      i++;
      ws();
      if (s[i] === close) return ++i > 0;
      for (;;) {
        if (c === "{") {
          ws();
          if (s[i] !== '"' || !str()) return false;
          ws();
          if (s[i] !== ":") return false;
          i++;
        }
        if (!value()) return false;
        ws();
        if (s[i] === close) return ++i > 0;
        if (s[i] !== ",") return false;
        i++;
      }
    }
    if (c === '"') return str();
    for (const word of ["true", "false", "null"]) if (s.startsWith(word, i)) return (i += word.length) > 0;
    NUMBER.lastIndex = i;
    if (!NUMBER.test(s)) return false;
    i = NUMBER.lastIndex;
    return true;
  };
  try {
    if (!value()) return i;
    ws();
    return i < s.length ? i : -1;
  } catch {
    // Nesting too deep for the stack: say nothing rather than guess.
    return -1;
  }
}

/** `JSON.stringify` that refuses what JSON cannot carry (undefined, functions, cycles, BigInt). */
export function stringifyJson(value: unknown, codec: string): string {
  let text: string | undefined;
  try {
    text = JSON.stringify(value);
  } catch (err) {
    throw encodeError(codec, `cannot encode value as JSON: ${err instanceof Error ? err.message : String(err)}`, err);
  }
  if (text === undefined) throw encodeError(codec, `cannot encode ${typeof value} as JSON`);
  return text;
}

/**
 * Splits a store body into lines (LF or CRLF). A final line break ends the last line rather than
 * starting an empty one, so `pack(a) + pack(b)` splits into the lines of both.
 */
export function splitLines(text: string): string[] {
  if (text === "") return [];
  const lines = text.split("\n");
  if (lines[lines.length - 1] === "") lines.pop();
  for (let i = 0; i < lines.length; i++) {
    const line = lines[i]!;
    if (line.endsWith("\r")) lines[i] = line.slice(0, -1);
  }
  return lines;
}

/** A short description of a value's kind for messages: `null`, `an array`, `string`. */
export function kindOf(value: unknown): string {
  if (value === null) return "null";
  if (Array.isArray(value)) return "an array";
  return typeof value;
}

/** Rejects options on codecs that take none. */
export function noOptions(codec: string, options?: Record<string, unknown>): void {
  const keys = options ? Object.keys(options) : [];
  if (keys.length > 0) {
    throw new GeoWatchError("CONFIG", `codec takes no options (got ${keys.map((k) => `"${k}"`).join(", ")})`, {
      backend: codec,
    });
  }
}
