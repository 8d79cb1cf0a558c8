/**
 * The original GeoWatch's tile request lines, `{isodate};{source},{z},{x},{y},{ext}`: one map-tile request per
 * line, as a tile server logs them. Unlike the original (which could only encode), lines decode too, and every
 * field is checked: a bad line is a DECODE error naming the line and the field.
 */
import { GeoWatchError } from "@geowatch/core";
import type { Codec, Metadata, Payload } from "@geowatch/core";
import { parseOptions, tilerequestCodecSchema } from "./options.js";
import type { TilerequestCodecOptions } from "./options.js";

/** One tile request. */
export interface TileRequest {
  /** When it was requested, as written (ISO 8601; without a zone it is read as UTC). */
  date: string;
  /** The tile source (layer) name. */
  source: string;
  z: number;
  x: number;
  y: number;
  /** The tile format's extension (`png`, `jpg`, `pbf`). */
  ext: string;
}

/** The tilerequest codec: a `Codec<TileRequest>` whose metadata (for keys and filters) holds every field. */
export type TilerequestCodec = Codec<TileRequest>;

const DATE = /^(\d{4})-(\d{2})-(\d{2})(?:[T ](\d{2}):(\d{2})(?::(\d{2})(?:[.,](\d{1,9}))?)?)?(Z|[+-]\d{2}(?::?\d{2})?)?$/;
const SOURCE = /^[^\s;,]+$/;
const EXT = /^[A-Za-z0-9]{1,16}$/;
const INT = /^\d{1,10}$/;
const DAYS = [31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31];
const utf8 = new TextDecoder("utf-8", { fatal: true });

/** Milliseconds since the epoch of an ISO 8601 date (UTC when it names no zone), or undefined when it is none. */
export function parseIsoDate(s: string): number | undefined {
  const m = DATE.exec(s);
  if (!m) return undefined;
  const [, y, mo, d, h = "0", mi = "0", sec = "0", frac = "", zone] = m;
  const year = Number(y);
  const month = Number(mo);
  const day = Number(d);
  const leap = year % 4 === 0 && (year % 100 !== 0 || year % 400 === 0);
  if (month < 1 || month > 12 || day < 1 || day > (month === 2 && leap ? 29 : DAYS[month - 1]!)) return undefined;
  if (Number(h) > 23 || Number(mi) > 59 || Number(sec) > 59) return undefined;
  let ms = Date.UTC(year, month - 1, day, Number(h), Number(mi), Number(sec), Number(frac.padEnd(3, "0").slice(0, 3)));
  if (zone && zone !== "Z") {
    const sign = zone[0] === "-" ? -1 : 1;
    const digits = zone.slice(1).replace(":", "");
    const offH = Number(digits.slice(0, 2));
    const offM = Number(digits.slice(2) || "0");
    if (offH > 23 || offM > 59) return undefined;
    ms -= sign * (offH * 60 + offM) * 60_000;
  }
  return ms;
}

const show = (line: string) => JSON.stringify(line.length > 120 ? `${line.slice(0, 120)}...` : line);

function bad(line: string, field: string, why: string): GeoWatchError {
  return new GeoWatchError("DECODE", `tile request line ${show(line)}: ${field} ${why} (expected {isodate};{source},{z},{x},{y},{ext})`, { backend: "tilerequest", path: field });
}

/** Parses one line; throws DECODE naming the line and the field. */
export function parseTileRequest(line: string, maxZoom = 30): TileRequest {
  if (line.includes("\n") || line.includes("\r")) throw bad(line, "line", "holds more than one line");
  const semi = line.indexOf(";");
  if (semi < 0) throw bad(line, "line", 'has no ";" after the date');
  const date = line.slice(0, semi);
  if (parseIsoDate(date) === undefined) throw bad(line, "date", `${JSON.stringify(date)} is not an ISO 8601 date`);
  const parts = line.slice(semi + 1).split(",");
  if (parts.length !== 5) throw bad(line, "line", `has ${parts.length} comma-separated fields after the date, not 5`);
  const [source, zs, xs, ys, ext] = parts as [string, string, string, string, string];
  if (!SOURCE.test(source)) throw bad(line, "source", `${JSON.stringify(source)} is empty or holds a space, ";" or ","`);
  const int = (field: string, s: string): number => {
    if (!INT.test(s)) throw bad(line, field, `${JSON.stringify(s)} is not a non-negative integer`);
    return Number(s);
  };
  const z = int("z", zs);
  if (z > maxZoom) throw bad(line, "z", `${z} is above the highest zoom level ${maxZoom}`);
  const x = int("x", xs);
  const y = int("y", ys);
  const n = 2 ** z;
  if (x >= n) throw bad(line, "x", `${x} is outside 0..${n - 1} at zoom ${z}`);
  if (y >= n) throw bad(line, "y", `${y} is outside 0..${n - 1} at zoom ${z}`);
  if (!EXT.test(ext)) throw bad(line, "ext", `${JSON.stringify(ext)} is not 1-16 letters or digits`);
  return { date, source, z, x, y, ext };
}

/** Formats one request as a line; throws ENCODE naming the field when it could not be read back. */
export function formatTileRequest(t: TileRequest, maxZoom = 30): string {
  const fail = (field: string, why: string) => new GeoWatchError("ENCODE", `tile request ${field} ${why}`, { backend: "tilerequest", path: field });
  if (t === null || typeof t !== "object") throw fail("value", "is not an object with date, source, z, x, y and ext");
  if (typeof t.date !== "string" || parseIsoDate(t.date) === undefined) throw fail("date", `${JSON.stringify(t.date)} is not an ISO 8601 date string`);
  if (typeof t.source !== "string" || !SOURCE.test(t.source)) throw fail("source", `${JSON.stringify(t.source)} is not a non-empty string without spaces, ";" or ","`);
  for (const k of ["z", "x", "y"] as const) if (!Number.isSafeInteger(t[k]) || t[k] < 0) throw fail(k, `${JSON.stringify(t[k])} is not a non-negative integer`);
  if (t.z > maxZoom) throw fail("z", `${t.z} is above the highest zoom level ${maxZoom}`);
  if (t.x >= 2 ** t.z || t.y >= 2 ** t.z) throw fail(t.x >= 2 ** t.z ? "x" : "y", `is outside 0..${2 ** t.z - 1} at zoom ${t.z}`);
  if (typeof t.ext !== "string" || !EXT.test(t.ext)) throw fail("ext", `${JSON.stringify(t.ext)} is not 1-16 letters or digits`);
  return `${t.date};${t.source},${t.z},${t.x},${t.y},${t.ext}`;
}

function textOf(p: Payload): string {
  if (typeof p === "string") return p;
  try {
    return utf8.decode(p);
  } catch {
    throw new GeoWatchError("DECODE", "tile request line is not valid UTF-8", { backend: "tilerequest" });
  }
}

/** The tilerequest codec (`codec: tilerequest`, options `{ ttl, max_zoom }`). */
export function tilerequestCodec(options: TilerequestCodecOptions = {}): TilerequestCodec {
  const opts = parseOptions<TilerequestCodecOptions>(tilerequestCodecSchema, options, "tilerequest codec");
  const maxZoom = opts.maxZoom ?? 30;
  const ttlMs = opts.ttl === undefined ? undefined : opts.ttl * 1000;
  const expiresAt = (t: TileRequest): number | undefined => (ttlMs === undefined ? undefined : parseIsoDate(t.date)! + ttlMs);
  // One trailing line break (CRLF too) belongs to the line, not to its ext.
  const decodeLine = (line: string): TileRequest => parseTileRequest(line.replace(/\r?\n?$/, ""), maxZoom);
  return {
    name: "tilerequest",
    contentType: "text/plain; charset=utf-8",
    appendable: true,
    encode: (t) => formatTileRequest(t, maxZoom),
    decode: (p) => decodeLine(textOf(p)),
    pack: (values) => values.map((t) => `${formatTileRequest(t, maxZoom)}\n`).join(""),
    unpack(p) {
      const now = Date.now();
      const out: TileRequest[] = [];
      for (const line of textOf(p).split("\n")) {
        if (line.trim() === "") continue;
        const t = decodeLine(line);
        const exp = expiresAt(t);
        if (exp === undefined || exp > now) out.push(t);
      }
      return out;
    },
    metadataOf(t): Metadata {
      const meta: Metadata = { actiontype: "request", targettype: "tile", date: t.date, source: t.source, z: t.z, x: t.x, y: t.y, ext: t.ext };
      const exp = expiresAt(t);
      if (exp !== undefined) {
        meta.expires = new Date(exp).toISOString();
        meta.expired = exp <= Date.now();
      }
      return meta;
    },
  };
}
