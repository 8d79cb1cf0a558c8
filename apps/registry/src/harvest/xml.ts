import { GeoWatchError } from "@geowatch/core";
import { XMLParser, XMLValidator } from "fast-xml-parser";

/** Default size limit of an XML document the registry parses (capabilities, CSW requests). */
export const MAX_XML_BYTES = 50 * 1024 * 1024;

export type XmlNode = Record<string, unknown>;

const parser = new XMLParser({
  ignoreAttributes: false,
  attributeNamePrefix: "@",
  removeNSPrefix: true,
  // No entity is ever expanded: ENTITY declarations are refused and a DOCTYPE dropped before parsing; the five predefined entities and
  // character references are decoded here, once, as text.
  processEntities: false,
  htmlEntities: false,
  parseTagValue: false,
  parseAttributeValue: false,
  trimValues: true,
  textNodeName: "#text",
  tagValueProcessor: (_name, value) => decodeEntities(value),
  attributeValueProcessor: (_name, value) => decodeEntities(value),
});

const PREDEFINED: Record<string, string> = { amp: "&", lt: "<", gt: ">", quot: '"', apos: "'" };

function decodeEntities(s: string): string {
  if (!s.includes("&")) return s;
  return s.replace(/&(#x[0-9a-fA-F]+|#[0-9]+|amp|lt|gt|quot|apos);/g, (_m, e: string) => {
    if (e[0] === "#") {
      const code = e[1] === "x" ? parseInt(e.slice(2), 16) : parseInt(e.slice(1), 10);
      return code > 0 && code <= 0x10ffff ? String.fromCodePoint(code) : "";
    }
    return PREDEFINED[e]!;
  });
}

/**
 * Parses untrusted XML: refuses ENTITY declarations and any DOCTYPE beyond an external DTD reference (XML bombs,
 * external entities; nothing is ever expanded or fetched), documents over
 * `maxBytes` and documents that are not well-formed, each a GeoWatchError "XML" saying which.
 */
export function parseXml(text: string, what: string, maxBytes = MAX_XML_BYTES): XmlNode {
  if (Buffer.byteLength(text) > maxBytes) {
    throw new GeoWatchError("XML", `${what}: document is larger than ${maxBytes} bytes`, { backend: "registry" });
  }
  if (/<!ENTITY/i.test(text)) {
    throw new GeoWatchError("XML", `${what}: ENTITY declarations are refused (entities are never expanded: XML bombs, external entities)`, { backend: "registry" });
  }
  // WMS 1.1.1 documents must carry a DOCTYPE (an external DTD, sometimes ELEMENT declarations). With no
  // ENTITY declaration it can define nothing that expands; the DTD is never fetched, and the declaration is
  // dropped before parsing. Anything else in an internal subset is refused.
  const doctype = /<!DOCTYPE\s+[\w:.-]+(?:\s+(?:SYSTEM|PUBLIC)(?:\s+"[^"]*"|\s+'[^']*'){1,2})?\s*(\[(?:\s*<!(?:ELEMENT|ATTLIST)[^>]*>|\s*<!--[\s\S]*?-->)*\s*\])?\s*>/i;
  if (/<!DOCTYPE/i.test(text)) {
    const m = doctype.exec(text);
    if (!m) throw new GeoWatchError("XML", `${what}: DOCTYPE declaration refused (only an external DTD reference with ELEMENT/ATTLIST declarations is accepted)`, { backend: "registry" });
    text = text.slice(0, m.index) + text.slice(m.index + m[0].length);
    if (/<!DOCTYPE/i.test(text)) throw new GeoWatchError("XML", `${what}: more than one DOCTYPE declaration`, { backend: "registry" });
  }
  const valid = XMLValidator.validate(text, { allowBooleanAttributes: true });
  if (valid !== true) {
    throw new GeoWatchError("XML", `${what}: not well-formed XML: ${valid.err.msg} (line ${valid.err.line})`, { backend: "registry" });
  }
  return parser.parse(text) as XmlNode;
}

/** The value as an array (fast-xml-parser gives one child as an object, several as an array). */
export function arr<T = XmlNode>(v: unknown): T[] {
  if (v === undefined || v === null) return [];
  return (Array.isArray(v) ? v : [v]) as T[];
}

/** Text of an element that may carry attributes. */
export function text(v: unknown): string {
  if (v === undefined || v === null) return "";
  if (typeof v === "string" || typeof v === "number") return String(v).trim();
  if (Array.isArray(v)) return text(v[0]);
  if (typeof v === "object") return text((v as XmlNode)["#text"]);
  return "";
}

export function child(v: unknown, ...path: string[]): XmlNode | undefined {
  let cur: unknown = v;
  for (const p of path) {
    if (cur === undefined || cur === null || typeof cur !== "object") return undefined;
    cur = Array.isArray(cur) ? (cur[0] as XmlNode)?.[p] : (cur as XmlNode)[p];
  }
  if (Array.isArray(cur)) return cur[0] as XmlNode;
  return cur as XmlNode | undefined;
}

/** Escapes text for XML output. */
export function esc(s: string | number): string {
  return String(s).replace(/[&<>"']/g, (c) => ({ "&": "&amp;", "<": "&lt;", ">": "&gt;", '"': "&quot;", "'": "&apos;" })[c]!);
}
