/** How GeoWatch records map to SQS messages and back: body text, key and headers as message attributes. */
import type { Message as SqsMessage, MessageAttributeValue } from "@aws-sdk/client-sqs";
import type { InRecord, Payload } from "@geowatch/core";

/** Message attribute holding the record key (SQS has no key of its own). */
export const KEY_ATTRIBUTE = "geowatch-key";
/** Message attribute set to `base64` when the body is base64 of bytes SQS cannot carry as text. */
export const ENCODING_ATTRIBUTE = "geowatch-encoding";
/** SQS takes at most this many message attributes per message. */
export const MAX_ATTRIBUTES = 10;

/** Characters outside what SQS accepts in a body or attribute value (XML 1.0 chars; lone surrogates too). */
const NOT_SQS_TEXT = /[^\t\n\r\u0020-\uD7FF\uE000-\uFFFD\u{10000}-\u{10FFFF}]/u;
const ATTRIBUTE_NAME = /^(?!\.)(?!.*\.\.)(?!.*\.$)[A-Za-z0-9_.-]{1,256}$/;
const strictUtf8 = new TextDecoder("utf-8", { fatal: true });

/** A message body: the text itself when SQS can carry it, else base64 of its bytes. */
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
  if (text !== undefined && !NOT_SQS_TEXT.test(text)) return { body: text, base64: false };
  const bytes = typeof value === "string" ? Buffer.from(value, "utf8") : Buffer.from(value.buffer, value.byteOffset, value.byteLength);
  return { body: bytes.toString("base64"), base64: true };
}

/** Why a string cannot be a message attribute value, or undefined. */
export function badText(value: string): string | undefined {
  const m = NOT_SQS_TEXT.exec(value);
  return m ? `has U+${m[0].codePointAt(0)!.toString(16).toUpperCase().padStart(4, "0")}, which SQS does not accept` : undefined;
}

export function badAttributeName(name: string): string | undefined {
  if (!ATTRIBUTE_NAME.test(name)) return `"${name}" is not a valid SQS message attribute name (letters, digits, "_", "-", ".", up to 256)`;
  if (/^(aws|amazon)\./i.test(name)) return `"${name}" is reserved (names starting with AWS. or Amazon.)`;
  return undefined;
}

/** String message attributes and their size as SQS counts it (name + type + value). */
export function stringAttributes(values: Record<string, string>): { attributes: Record<string, MessageAttributeValue>; bytes: number } {
  const attributes: Record<string, MessageAttributeValue> = {};
  let bytes = 0;
  for (const [name, value] of Object.entries(values)) {
    attributes[name] = { DataType: "String", StringValue: value };
    bytes += Buffer.byteLength(name) + "String".length + Buffer.byteLength(value);
  }
  return { attributes, bytes };
}

/** An SQS message as a GeoWatch record: attributes become headers, the key attribute the key. */
export function toRecord(m: SqsMessage, handle: unknown, fifo: boolean): InRecord {
  const attrs = m.MessageAttributes ?? {};
  const base64 = attrs[ENCODING_ATTRIBUTE]?.StringValue === "base64";
  const body = m.Body ?? "";
  const rec: InRecord = { value: base64 ? new Uint8Array(Buffer.from(body, "base64")) : body, handle };
  const headers: Record<string, string> = {};
  for (const [name, a] of Object.entries(attrs)) {
    if (name === KEY_ATTRIBUTE || name === ENCODING_ATTRIBUTE) continue;
    if (a.StringValue !== undefined) headers[name] = a.StringValue;
    else if (a.BinaryValue !== undefined) headers[name] = Buffer.from(a.BinaryValue).toString("base64");
  }
  if (Object.keys(headers).length > 0) rec.headers = headers;
  const key = attrs[KEY_ATTRIBUTE]?.StringValue ?? (fifo ? m.Attributes?.MessageGroupId : undefined);
  if (key !== undefined) rec.key = key;
  const count = Number(m.Attributes?.ApproximateReceiveCount);
  if (Number.isFinite(count) && count >= 1) rec.redeliveries = count - 1;
  const sent = Number(m.Attributes?.SentTimestamp);
  if (Number.isFinite(sent) && sent > 0) rec.timestamp = sent;
  return rec;
}
