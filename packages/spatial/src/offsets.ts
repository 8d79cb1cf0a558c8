/** Offsets of one input stream: comparing them. */

const DIGITS = /^[0-9]+$/;

/** An offset as a digit string without leading zeros, or undefined when it is not a non-negative integer. */
function digitsOf(v: string | number): string | undefined {
  if (typeof v === "number") return Number.isSafeInteger(v) && v >= 0 ? String(v) : undefined;
  if (!DIGITS.test(v)) return undefined;
  return v.length > 1 && v.charCodeAt(0) === 48 ? v.replace(/^0+(?=[0-9])/, "") : v;
}

/**
 * Orders two offsets of one stream: numbers numerically; digit strings (Kafka offsets, 56-digit Kinesis
 * sequence numbers) by length, then lexicographically. Undefined when they are not comparable.
 */
export function compareOffsets(a: string | number, b: string | number): number | undefined {
  if (typeof a === "number" && typeof b === "number") {
    return Number.isNaN(a) || Number.isNaN(b) ? undefined : a < b ? -1 : a > b ? 1 : 0;
  }
  const da = digitsOf(a), db = digitsOf(b);
  if (da === undefined || db === undefined) return undefined;
  if (da.length !== db.length) return da.length < db.length ? -1 : 1;
  return da < db ? -1 : da > db ? 1 : 0;
}
