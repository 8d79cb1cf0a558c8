/** How GeoWatch records map to SNS messages: body text, subject, key, headers and metadata as message attributes. */
import type { MessageAttributeValue } from "@aws-sdk/client-sns";
import type { Metadata, Payload } from "@geowatch/core";

/** Message attribute holding the record key; `@geowatch/sqs` reads it back through raw delivery. */
export const KEY_ATTRIBUTE = "geowatch-key";
/** Message attribute set to `base64` when the body is base64 of bytes that are not text. */
export const ENCODING_ATTRIBUTE = "geowatch-encoding";
/** Most message attributes SQS (raw delivery) takes, so SNS -> SQS never drops a message for them. */
export const MAX_ATTRIBUTES = 10;

/** Characters outside what SNS -> SQS delivery carries (XML 1.0 chars; lone surrogates too). */
const NOT_TEXT = /[^\t\n\r\u0020-\uD7FF\uE000-\uFFFD\u{10000}-\u{10FFFF}]/u;
const ATTRIBUTE_NAME = /^(?!\.)(?!.*\.\.)(?!.*\.$)[A-Za-z0-9_.-]{1,256}$/;
const strictUtf8 = new TextDecoder("utf-8", { fatal: true });

/** A message body: the text itself when it is text SNS can carry, else base64 of its bytes. */
export function bodyOf(value: Payload): { body: string; base64: boolean } {
  let text: string | undefined;
  if (typeof value === "string") text = value;
  else {
    try {
      text = strictUtf8.decode(value);
    } catch {
      text = undefined;
    }
  }
  if (text !== undefined && !NOT_TEXT.test(text)) return { body: text, base64: false };
  const bytes = typeof value === "string" ? Buffer.from(value, "utf8") : Buffer.from(value.buffer, value.byteOffset, value.byteLength);
  return { body: bytes.toString("base64"), base64: true };
}

/** Why an attribute cannot be sent, or undefined. */
export function badAttribute(name: string, value: string): string | undefined {
  if (!ATTRIBUTE_NAME.test(name)) return `"${name}" is not a valid message attribute name (letters, digits, "_", "-", ".", up to 256)`;
  if (/^(aws|amazon)\./i.test(name)) return `"${name}" is reserved (names starting with AWS. or Amazon.)`;
  const m = NOT_TEXT.exec(value);
  if (m) return `attribute "${name}" has U+${m[0].codePointAt(0)!.toString(16).toUpperCase().padStart(4, "0")}, which SNS does not carry`;
  return undefined;
}

/**
 * An SNS subject: printable ASCII, one line, under 100 characters. Accents are dropped (é -> e), other
 * characters become "?", so a notification is never refused for its subject.
 */
export function subjectOf(text: string): string | undefined {
  const ascii = text
    .normalize("NFKD")
    .replace(/[\u0300-\u036f]/g, "")
    .replace(/[\r\n\t]+/g, " ")
    .replace(/[^\x20-\x7e]/g, "?")
    .trim()
    .slice(0, 99);
  return ascii === "" ? undefined : ascii;
}

/** Attributes from metadata fields, headers and the key; sizes as SNS counts them (name + type + value). */
export function attributesOf(
  metadata: Metadata | undefined,
  fields: string[],
  headers: Record<string, string> | undefined,
  extra: Record<string, string>,
): { attributes: Record<string, MessageAttributeValue>; bytes: number; problem?: string } {
  const attributes: Record<string, MessageAttributeValue> = {};
  let bytes = 0;
  const add = (name: string, type: "String" | "Number", value: string): string | undefined => {
    const bad = badAttribute(name, value);
    if (bad) return bad;
    attributes[name] = { DataType: type, StringValue: value };
    bytes += Buffer.byteLength(name) + type.length + Buffer.byteLength(value);
    return undefined;
  };
  for (const f of fields) {
    const v = metadata && Object.hasOwn(metadata, f) ? metadata[f] : undefined;
    const problem =
      typeof v === "string" && v !== "" ? add(f, "String", v) : typeof v === "number" && Number.isFinite(v) ? add(f, "Number", String(v)) : undefined;
    if (problem) return { attributes, bytes, problem };
  }
  for (const [name, value] of Object.entries({ ...headers, ...extra })) {
    const problem = add(name, "String", value);
    if (problem) return { attributes, bytes, problem };
  }
  const n = Object.keys(attributes).length;
  if (n > MAX_ATTRIBUTES) return { attributes, bytes, problem: `${n} message attributes (metadata, headers, key); at most ${MAX_ATTRIBUTES} reach an SQS subscription` };
  return { attributes, bytes };
}
