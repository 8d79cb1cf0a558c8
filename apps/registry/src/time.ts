import { GeoWatchError } from "@geowatch/core";

const DAY = 86_400_000;

/**
 * A date as Hypermap and Solr wrote them: `2013`, `2013-03`, `2013-03-01`, `2013-03-01T10:00:00[Z]`, or a full
 * ISO string; UTC when no zone is given. Returns epoch ms, or undefined for `*`.
 */
export function parseDate(text: string, what = "date"): number | undefined {
  const t = text.trim();
  if (t === "*" || t === "") return undefined;
  let iso = t;
  if (/^\d{4}$/.test(t)) iso = `${t}-01-01`;
  else if (/^\d{4}-\d{2}$/.test(t)) iso = `${t}-01`;
  if (/^\d{4}-\d{2}-\d{2}$/.test(iso)) iso = `${iso}T00:00:00Z`;
  else if (/^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}(:\d{2}(\.\d+)?)?$/.test(iso)) iso = `${iso}Z`;
  const ms = Date.parse(iso);
  if (!Number.isFinite(ms)) throw new GeoWatchError("VALIDATE", `${what}: "${text}" is not a date (use 2013-03-01 or 2013-03-01T00:00:00Z, or *)`, { backend: "registry" });
  return ms;
}

/** `[A TO B]` (Solr range syntax as in Hypermap's q.time and a.time.filter) to [from, to]. */
export function parseRange(text: string, what: string): [number | undefined, number | undefined] {
  const m = /^\s*\[\s*(\S+)\s+TO\s+(\S+)\s*\]\s*$/i.exec(text);
  if (!m) throw new GeoWatchError("VALIDATE", `${what}: "${text}" is not a range like [2013-03-01 TO 2013-04-01T00:00:00]`, { backend: "registry" });
  return [parseDate(m[1]!, what), parseDate(m[2]!, what)];
}

/** An ISO 8601 duration's fixed length in ms (weeks, days, hours, minutes, seconds), or undefined for months/years. */
function fixedGap(gap: string): number | undefined {
  const m = /^P(?:(\d+)W|(\d+)D)?(?:T(?:(\d+)H)?(?:(\d+)M)?(?:(\d+)S)?)?$/.exec(gap);
  if (!m || gap === "P" || gap === "PT") return undefined;
  const [, w, d, h, mi, s] = m.map((x) => Number(x ?? 0));
  const ms = ((w! * 7 + d!) * 24 * 3600 + h! * 3600 + mi! * 60 + s!) * 1000;
  return ms > 0 ? ms : undefined;
}

/** Bucket start times from `start` to `end` by `gap` (P1D, PT1H, P1W, P1M, P1Y, ...), at most `limit` buckets. */
export function gapBuckets(start: number, end: number, gap: string, limit: number): { buckets: number[]; fixedMs?: number } {
  const fixed = fixedGap(gap);
  const buckets: number[] = [];
  if (fixed !== undefined) {
    for (let t = start; t < end && buckets.length < limit; t += fixed) buckets.push(t);
    return { buckets, fixedMs: fixed };
  }
  const m = /^P(?:(\d+)Y)?(?:(\d+)M)?$/.exec(gap);
  const years = Number(m?.[1] ?? 0);
  const months = Number(m?.[2] ?? 0) + years * 12;
  if (!m || months <= 0) {
    throw new GeoWatchError("VALIDATE", `a.time.gap: "${gap}" is not an ISO 8601 duration like P1D, PT1H, P1W, P1M or P1Y`, { backend: "registry" });
  }
  const d = new Date(start);
  for (let i = 0; buckets.length < limit; i++) {
    const t = Date.UTC(d.getUTCFullYear(), d.getUTCMonth() + i * months, d.getUTCDate(), d.getUTCHours(), d.getUTCMinutes(), d.getUTCSeconds());
    if (t >= end) break;
    buckets.push(t);
  }
  return { buckets };
}

/** A gap giving about `target` buckets between start and end, for when a.time.gap is not given. */
export function autoGap(start: number, end: number, target = 50): string {
  const span = Math.max(1, end - start) / target;
  if (span <= 3600_000) return "PT1H";
  if (span <= DAY) return "P1D";
  if (span <= 7 * DAY) return "P1W";
  if (span <= 31 * DAY) return "P1M";
  return "P1Y";
}
