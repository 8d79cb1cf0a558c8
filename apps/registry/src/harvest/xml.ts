import { GeoWatchError, xmlStructureError } from "@geowatch/core";
import { XMLParser } from "fast-xml-parser";

/** Default size limit of an XML document the registry parses (capabilities, CSW requests). */
export const MAX_XML_BYTES = 50 * 1024 * 1024;

export type XmlNode = Record<string, unknown>;

// The ordered output with no path strings (`preserveOrder`, `jPath: false`): several times faster than the
// library's own object building, which keeps a path matcher and callbacks on every node; `toObject` below
// builds the same object form from it in one walk.
const parser = new XMLParser({
  ignoreAttributes: false,
  attributeNamePrefix: "@",
  removeNSPrefix: true,
  // No entity is ever expanded: ENTITY declarations are refused and a DOCTYPE dropped before parsing; the five predefined entities and
  // character references are decoded by toObject, once, as text.
  processEntities: false,
  htmlEntities: false,
  parseTagValue: false,
  parseAttributeValue: false,
  trimValues: true,
  textNodeName: "#text",
  ignoreDeclaration: true,
  ignorePiTags: true,
  preserveOrder: true,
  jPath: false,
});

const PREDEFINED: Record<string, string> = { amp: "&", lt: "<", gt: ">", quot: '"', apos: "'" };
const REFERENCE = /&(#x[0-9a-fA-F]+|#[0-9]+|amp|lt|gt|quot|apos);/g;

/** Text and attribute values as toObject decodes them: the five predefined entities and character references. */
export function decodeEntities(s: string): string {
  if (s.indexOf("&") < 0) return s;
  return s.replace(REFERENCE, (_m, e: string) => {
    if (e[0] === "#") {
      const code = e[1] === "x" ? parseInt(e.slice(2), 16) : parseInt(e.slice(1), 10);
      return code > 0 && code <= 0x10ffff ? String.fromCodePoint(code) : "";
    }
    return PREDEFINED[e]!;
  });
}

/**
 * One node of fast-xml-parser's ordered output: `{ [name]: children, ":@"?: { "@attr": value } }`, text as
 * `{ "#text": value }`; text and attribute values not yet decoded (`ownText` and `attrOf` decode them).
 */
export type Ordered = Record<string, unknown>;

/** The element name of an ordered node ("#text" for text). */
export function tagOf(node: Ordered): string | undefined {
  for (const k in node) if (k !== ":@") return k;
  return undefined;
}

/** The children of an ordered element node. */
export function kidsOf(node: Ordered, tag: string): Ordered[] {
  return node[tag] as Ordered[];
}

/** An element's own text (not its children's), decoded and trimmed: what `text()` gives for its object form. */
export function ownText(node: Ordered, tag: string): string {
  const kids = node[tag] as Ordered[];
  let out = "";
  for (let i = 0; i < kids.length; i++) {
    const t = kids[i]!["#text"];
    if (t !== undefined) out += decodeEntities(String(t));
  }
  return out.trim();
}

/** An attribute of an ordered element node by local name, decoded; undefined when absent. */
export function attrOf(node: Ordered, name: string): string | undefined {
  const v = (node[":@"] as Record<string, string> | undefined)?.[`@${name}`];
  return v === undefined ? undefined : decodeEntities(String(v));
}

/**
 * The object form from the ordered output: children by name (repeated ones as an array), attributes under
 * `@name`, text under `#text`; an element with text only is its text, an empty one "" (fast-xml-parser's own
 * object form, which the harvesters and the CSW server read).
 */
export function toObject(children: Ordered[]): XmlNode {
  const obj: XmlNode = {};
  let text: string | undefined;
  for (let i = 0; i < children.length; i++) {
    const node = children[i]!;
    let tag: string | undefined;
    for (const k in node) {
      if (k !== ":@") {
        tag = k;
        break;
      }
    }
    if (tag === undefined) continue;
    if (tag === "#text") {
      const t = decodeEntities(String(node[tag]));
      text = text === undefined ? t : text + t;
      continue;
    }
    const inner = node[tag] as Ordered[];
    const attrs = node[":@"] as Record<string, string> | undefined;
    let value: unknown;
    if (inner.length === 0) {
      value = "";
    } else if (inner.length === 1 && attrs === undefined && "#text" in inner[0]!) {
      value = decodeEntities(String(inner[0]!["#text"]));
    } else {
      value = toObject(inner);
      if (attrs === undefined) {
        let keys = 0;
        for (const _k in value as XmlNode) if (++keys > 1) break;
        if (keys === 0) value = "";
        else if (keys === 1 && (value as XmlNode)["#text"] !== undefined) value = (value as XmlNode)["#text"];
      }
    }
    if (attrs !== undefined) {
      if (typeof value === "string") value = value === "" ? {} : { "#text": value };
      for (const k in attrs) (value as XmlNode)[k] = decodeEntities(attrs[k]!);
    }
    const had = obj[tag];
    if (had === undefined) obj[tag] = value;
    else if (Array.isArray(had)) had.push(value);
    else obj[tag] = [had, value];
  }
  if (text !== undefined && text.length > 0) obj["#text"] = text;
  return obj;
}

const DOCTYPE = /<!DOCTYPE\s+[\w:.-]+(?:\s+(?:SYSTEM|PUBLIC)(?:\s+"[^"]*"|\s+'[^']*'){1,2})?\s*(\[(?:\s*<!(?:ELEMENT|ATTLIST)[^>]*>|\s*<!--[\s\S]*?-->)*\s*\])?\s*>/iy;

/** Every `<!` declaration outside comments and CDATA sections: its index and its keyword in upper case. */
function declarations(text: string): { index: number; keyword: string }[] {
  const out: { index: number; keyword: string }[] = [];
  for (let i = text.indexOf("<!"); i >= 0; i = text.indexOf("<!", i + 2)) {
    if (text.startsWith("<!--", i)) {
      const j = text.indexOf("-->", i + 4);
      if (j < 0) break;
      i = j;
      continue;
    }
    if (text.startsWith("<![CDATA[", i)) {
      const j = text.indexOf("]]>", i + 9);
      if (j < 0) break;
      i = j;
      continue;
    }
    out.push({ index: i, keyword: /^[A-Za-z]*/.exec(text.slice(i + 2, i + 12))![0].toUpperCase() });
  }
  return out;
}

/**
 * Parses untrusted XML: refuses ENTITY declarations and any DOCTYPE beyond an external DTD reference (XML bombs,
 * external entities; nothing is ever expanded or fetched), documents over
 * `maxBytes` and documents that are not well-formed, each a GeoWatchError "XML" saying which.
 */
export function parseXml(text: string, what: string, maxBytes = MAX_XML_BYTES): XmlNode {
  return toObject(parseXmlOrdered(text, what, maxBytes));
}

/** parseXml's checks, then fast-xml-parser's ordered output (the document's top-level nodes), for readers that walk it directly. */
export function parseXmlOrdered(text: string, what: string, maxBytes = MAX_XML_BYTES): Ordered[] {
  return parseChecked(checkXml(text, what, maxBytes), what);
}

/**
 * The safety and well-formedness checks of parseXml, without parsing: refuses documents over `maxBytes`, ENTITY
 * declarations, any DOCTYPE beyond an external DTD reference, and documents that are not well-formed. Returns the
 * text to parse (a DOCTYPE and a byte order mark dropped). Readers of their own (the WMS layer scanner) run only on
 * what this returns.
 */
export function checkXml(text: string, what: string, maxBytes = MAX_XML_BYTES): string {
  // A string's UTF-8 length is between its length and three times it: count bytes only when in doubt.
  if (text.length > maxBytes || (text.length * 3 > maxBytes && Buffer.byteLength(text) > maxBytes)) {
    throw new GeoWatchError("XML", `${what}: document is larger than ${maxBytes} bytes`, { backend: "registry" });
  }
  const decls = declarations(text);
  // An ENTITY declaration anywhere, inside a DOCTYPE's internal subset too, is refused before anything else.
  if (decls.some((d) => d.keyword === "ENTITY") || (decls.length > 0 && /<!ENTITY/i.test(text))) {
    throw new GeoWatchError("XML", `${what}: ENTITY declarations are refused (entities are never expanded: XML bombs, external entities)`, { backend: "registry" });
  }
  // WMS 1.1.1 documents must carry a DOCTYPE (an external DTD, sometimes ELEMENT declarations). With no
  // ENTITY declaration it can define nothing that expands; the DTD is never fetched, and the declaration is
  // dropped before parsing. Anything else in an internal subset is refused.
  const doctypes = decls.filter((d) => d.keyword === "DOCTYPE");
  if (doctypes.length > 1) throw new GeoWatchError("XML", `${what}: more than one DOCTYPE declaration`, { backend: "registry" });
  if (doctypes.length === 1) {
    DOCTYPE.lastIndex = doctypes[0]!.index;
    const m = DOCTYPE.exec(text);
    if (!m) throw new GeoWatchError("XML", `${what}: DOCTYPE declaration refused (only an external DTD reference with ELEMENT/ATTLIST declarations is accepted)`, { backend: "registry" });
    text = text.slice(0, m.index) + text.slice(m.index + m[0].length);
  }
  if (text.charCodeAt(0) === 0xfeff) text = text.slice(1);
  const bad = xmlStructureError(text);
  if (bad) {
    throw new GeoWatchError("XML", `${what}: not well-formed XML: ${bad.message} (line ${bad.line})`, { backend: "registry" });
  }
  return text;
}

/** fast-xml-parser's ordered output of a document checkXml returned. */
export function parseChecked(text: string, what: string): Ordered[] {
  try {
    return parser.parse(text) as Ordered[];
  } catch (err) {
    throw new GeoWatchError("XML", `${what}: not well-formed XML: ${err instanceof Error ? err.message : String(err)}`, { backend: "registry", cause: err });
  }
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
