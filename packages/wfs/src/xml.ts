/**
 * Safe XML for WFS and GML: fast-xml-parser with entity expansion off. A DOCTYPE or ENTITY declaration
 * (billion laughs, external entities) is refused before parsing; only the five predefined entities and
 * numeric character references are decoded, by this module; size, nesting depth and well-formedness
 * are checked. Namespace prefixes are kept, and the helpers find elements by local name, since servers
 * choose their own prefixes.
 */
import { GeoWatchError, lineAt, xmlStructureError } from "@geowatch/core";
import type { XmlStructure } from "@geowatch/core";
import { XMLParser } from "fast-xml-parser";

/** An element as parsed: attributes under `@_name`, text under `#text`, CDATA under `#cdata`, children by qualified name (repeated ones as arrays). */
export interface XmlElement {
  [name: string]: XmlValue;
}
/** A parsed value: text (an element with text only), an element, or the repeats of one child name. */
export type XmlValue = string | XmlElement | XmlValue[];

export interface ParseXmlOptions {
  /** Largest document in bytes (UTF-8). Default 16 MiB. */
  maxBytes?: number;
  /** Deepest element nesting. Default 100. */
  maxDepth?: number;
  /** What the document is, for error messages ("TransactionResponse", "GetFeature response"). */
  what?: string;
  /** Check the structure (matching tags, nothing left open, one root) before parsing. Default true. */
  validate?: boolean;
}

export const DEFAULT_MAX_XML_BYTES = 16 * 1024 * 1024;
export const DEFAULT_MAX_XML_DEPTH = 100;

const ATTR = "@_";
const TEXT = "#text";
const CDATA = "#cdata";
const utf8 = new TextDecoder("utf-8", { fatal: true });

const PREDEFINED: Record<string, string> = { lt: "<", gt: ">", amp: "&", quot: '"', apos: "'" };
const ENTITY_REF = /&(#x[0-9a-fA-F]+|#[0-9]+|[a-zA-Z_][\w.-]*);/g;

/**
 * Decodes the predefined entities and character references; any other `&name;` stays as written (there
 * is no DOCTYPE to define it, and nothing is ever expanded from one).
 */
export function decodeEntities(text: string): string {
  if (text.indexOf("&") < 0) return text;
  return text.replace(ENTITY_REF, (whole, ref: string) => {
    if (ref.charCodeAt(0) !== 35) return PREDEFINED[ref] ?? whole;
    const cp = ref.charCodeAt(1) === 120 ? Number.parseInt(ref.slice(2), 16) : Number.parseInt(ref.slice(1), 10);
    if (!Number.isFinite(cp) || cp <= 0 || cp > 0x10ffff || (cp >= 0xd800 && cp <= 0xdfff)) return whole;
    return String.fromCodePoint(cp);
  });
}


/** GML coordinate elements: read as raw text up to their end tag instead of character by character (coordinates hold no markup). */
const COORDINATE_ELEMENTS = ["posList", "pos", "coordinates", "lowerCorner", "upperCorner"];
const GML_PREFIX_DECL = /xmlns:([A-Za-z_][\w.-]*)=["']http:\/\/www\.opengis\.net\/gml(?:\/3\.2)?["']/g;

/** The prefixes a document binds to a GML namespace, plus `gml`. */
function gmlPrefixes(text: string): string[] {
  const found = new Set(["gml"]);
  GML_PREFIX_DECL.lastIndex = 0;
  for (let m = GML_PREFIX_DECL.exec(text); m; m = GML_PREFIX_DECL.exec(text)) found.add(m[1]!);
  return [...found].sort();
}

function parserFor(maxDepth: number, prefixes: string[]): XMLParser {
  return new XMLParser({
    stopNodes: prefixes.flatMap((p) => COORDINATE_ELEMENTS.map((e) => `..${p}:${e}`)),
    ignoreAttributes: false,
    attributeNamePrefix: ATTR,
    textNodeName: TEXT,
    cdataPropName: CDATA,
    removeNSPrefix: false,
    parseTagValue: false,
    parseAttributeValue: false,
    // Text is kept as written: a property's leading and trailing spaces are part of its value.
    trimValues: false,
    // Nothing is expanded by the parser; toTree and the GML decoder decode the predefined entities and
    // character references themselves (and never inside CDATA).
    processEntities: false,
    htmlEntities: false,
    ignoreDeclaration: true,
    ignorePiTags: true,
    maxNestedTags: maxDepth,
    // The ordered output and no path strings: 4-8x faster than the library's own object building on GML;
    // `toTree` builds the object form from it.
    preserveOrder: true,
    jPath: false,
  });
}

type Ordered = Record<string, unknown>;

/**
 * The element form from fast-xml-parser's ordered output: a text-only element becomes its text, repeated
 * children arrays; whitespace between child elements is dropped, a leaf's text is kept exactly.
 */
function toTree(children: Ordered[], attrs: Record<string, string> | undefined): XmlValue {
  let obj: XmlElement | undefined;
  let text = "";
  let cdata: string | undefined;
  let elements = false;
  if (attrs !== undefined) {
    obj = {};
    for (const k in attrs) obj[k] = decodeEntities(attrs[k]!);
  }
  for (let i = 0; i < children.length; i++) {
    const c = children[i]!;
    let tag: string | undefined;
    for (const k in c) {
      if (k !== ":@") {
        tag = k;
        break;
      }
    }
    if (tag === undefined) continue;
    if (tag === TEXT) {
      text += decodeEntities(c[TEXT] as string);
      continue;
    }
    if (tag === CDATA) {
      for (const t of c[CDATA] as Ordered[]) cdata = (cdata ?? "") + String(t[TEXT] ?? "");
      continue;
    }
    const value = toTree(c[tag] as Ordered[], c[":@"] as Record<string, string> | undefined);
    obj ??= {};
    elements = true;
    const had = obj[tag];
    if (had === undefined) obj[tag] = value;
    else if (Array.isArray(had)) had.push(value);
    else obj[tag] = [had, value];
  }
  if (obj === undefined && cdata === undefined) return text;
  obj ??= {};
  if (text !== "" && (!elements || text.trim() !== "")) obj[TEXT] = text;
  if (cdata !== undefined) obj[CDATA] = cdata;
  return obj;
}

const parsers = new Map<string, XMLParser>();

function xmlError(message: string, what: string | undefined, cause?: unknown, path?: string): GeoWatchError {
  return new GeoWatchError("XML", `${what ? `${what}: ` : ""}${message}`, { backend: "wfs", cause, path });
}

const DECLARATION = /<!(DOCTYPE|ENTITY)/i;

/** The checked text of a document: size, UTF-8, no DOCTYPE/ENTITY declaration, not empty. */
function checkedText(input: string | Uint8Array, opts: ParseXmlOptions): string {
  const maxBytes = opts.maxBytes ?? DEFAULT_MAX_XML_BYTES;
  const what = opts.what;
  let text: string;
  if (typeof input === "string") {
    // A string's UTF-8 length is between its length and three times it: count bytes only when in doubt.
    if (input.length > maxBytes || (input.length * 3 > maxBytes && Buffer.byteLength(input, "utf8") > maxBytes)) {
      throw xmlError(`document is larger than the limit of ${maxBytes} bytes`, what);
    }
    text = input;
  } else {
    if (input.byteLength > maxBytes) throw xmlError(`document of ${input.byteLength} bytes is larger than the limit of ${maxBytes} bytes`, what);
    try {
      text = utf8.decode(input);
    } catch (err) {
      throw xmlError("document is not valid UTF-8", what, err);
    }
  }
  if (text.charCodeAt(0) === 0xfeff) text = text.slice(1);
  const decl = DECLARATION.exec(text);
  if (decl) {
    throw xmlError(`DOCTYPE/entity declarations are not accepted (at line ${lineAt(text, decl.index)})`, what, undefined, `line ${lineAt(text, decl.index)}`);
  }
  if (text.trim() === "") throw xmlError("empty document", what);
  return text;
}

function checkStructure(text: string, opts: ParseXmlOptions, out?: XmlStructure): void {
  const bad = xmlStructureError(text, { maxDepth: opts.maxDepth ?? DEFAULT_MAX_XML_DEPTH, ...(out ? { out } : {}) });
  if (bad) {
    const column = bad.index - text.lastIndexOf("\n", bad.index - 1);
    throw xmlError(`not well-formed XML: ${bad.message} (line ${bad.line} column ${column})`, opts.what, undefined, `line ${bad.line}`);
  }
}

/**
 * fast-xml-parser's ordered form of one node: `{ [qualified name]: children, ":@"?: { "@_attr": value } }`,
 * text as `{ "#text": string }`, CDATA as `{ "#cdata": [{ "#text": string }] }`. The element name is the
 * node's first key. Internal: the GML decoder reads it directly (no element-form objects to build).
 */
export type OrderedNode = Record<string, unknown>;

/** Parses checked text into the ordered form: the root node. */
function parseOrdered(text: string, opts: ParseXmlOptions, prefixes = gmlPrefixes(text)): OrderedNode {
  const maxDepth = opts.maxDepth ?? DEFAULT_MAX_XML_DEPTH;
  const key = `${maxDepth} ${prefixes.join(" ")}`;
  let parser = parsers.get(key);
  if (!parser) {
    // Bounded: a document declaring many GML prefixes must not grow the cache without end.
    if (parsers.size > 32) parsers.clear();
    parsers.set(key, (parser = parserFor(maxDepth, prefixes)));
  }
  let ordered: Ordered[];
  try {
    ordered = parser.parse(text) as Ordered[];
  } catch (err) {
    const msg = err instanceof Error ? err.message : String(err);
    if (/nested tags/i.test(msg)) throw xmlError(`elements nest deeper than the limit of ${maxDepth}`, opts.what, err);
    throw xmlError(`not well-formed XML: ${msg}`, opts.what, err);
  }
  for (const node of ordered) {
    for (const tag in node) {
      if (tag !== ":@" && tag !== TEXT && tag !== CDATA) return node;
      break;
    }
  }
  throw xmlError("no root element", opts.what);
}

/** Parses checked text into the element form. */
function parseText(text: string, opts: ParseXmlOptions, prefixes?: string[]): XmlElement {
  const root = parseOrdered(text, opts, prefixes);
  for (const tag in root) return { [tag]: toTree(root[tag] as Ordered[], root[":@"] as Record<string, string> | undefined) };
  throw xmlError("no root element", opts.what);
}

/**
 * Parses XML text or UTF-8 bytes into an element tree. Throws a GeoWatchError with code `XML` when the
 * document is too large, declares a DOCTYPE or entities, nests too deep or is not well-formed.
 */
export function parseXml(input: string | Uint8Array, opts: ParseXmlOptions = {}): XmlElement {
  const text = checkedText(input, opts);
  if (opts.validate !== false) checkStructure(text, opts);
  return parseText(text, opts);
}

/** Bytes of the root's children parsed at once by `parseXmlParts`. */
const PART_BYTES = 1 << 20;

/** The checked document cut into parts of about PART_BYTES of the root's children, each a document of its own. */
function* partTexts(input: string | Uint8Array, opts: ParseXmlOptions, prefixes: string[]): Generator<string> {
  const text = checkedText(input, opts);
  // Declarations anywhere in the document count for every part (a part may lack the element that declares one).
  prefixes.push(...gmlPrefixes(text));
  const st: XmlStructure = { spans: [], rootName: "", rootStart: 0, rootOpenEnd: 0 };
  checkStructure(text, opts, st);
  const spans = st.spans;
  if (spans.length === 0 || text.length <= PART_BYTES) {
    yield text;
    return;
  }
  const open = text.slice(st.rootStart, st.rootOpenEnd);
  const close = `</${st.rootName}>`;
  for (let a = 0; a < spans.length; ) {
    let b = a + 2;
    while (b < spans.length && spans[b + 1]! - spans[a]! <= PART_BYTES) b += 2;
    yield open + text.slice(spans[a], spans[b - 1]) + close;
    a = b;
  }
}

/**
 * Parses a document in parts, for large collections: each part is a document whose root element has the
 * real root's name and attributes and a run of its children (about 1 MiB of them), so only one part's tree
 * is held at a time. The same checks as parseXml apply to the whole document first; `validate` is implied.
 */
export function* parseXmlParts(input: string | Uint8Array, opts: ParseXmlOptions = {}): Generator<XmlElement> {
  const prefixes: string[] = [];
  for (const part of partTexts(input, opts, prefixes)) yield parseText(part, opts, prefixes);
}

/** parseXmlParts in the ordered form (each part's root node). Internal, for the GML decoder. */
export function* parseOrderedParts(input: string | Uint8Array, opts: ParseXmlOptions = {}): Generator<OrderedNode> {
  const prefixes: string[] = [];
  for (const part of partTexts(input, opts, prefixes)) yield parseOrdered(part, opts, prefixes);
}

/** `&` as `&amp;`: the ordered form holds text as written, and its readers decode references once. */
const rawText = (s: string): string => (s.indexOf("&") < 0 ? s : s.replace(/&/g, "&amp;"));

/** An element-form value as ordered nodes named `name` (repeats give several); order between different names is the element form's. */
export function toOrdered(name: string, value: XmlValue): OrderedNode[] {
  if (Array.isArray(value)) return value.flatMap((v) => toOrdered(name, v));
  if (typeof value === "string") return [{ [name]: value === "" ? [] : [{ [TEXT]: rawText(value) }] }];
  const kids: OrderedNode[] = [];
  let attrs: Record<string, string> | undefined;
  for (const k in value) {
    const v = value[k]!;
    if (k.startsWith(ATTR)) (attrs ??= {})[k] = rawText(String(v));
    else if (k === TEXT) kids.push({ [TEXT]: rawText(textOf(v)) });
    else if (k === CDATA) kids.push({ [CDATA]: [{ [TEXT]: textOf(v) }] });
    else kids.push(...toOrdered(k, v));
  }
  return [attrs ? { [name]: kids, ":@": attrs } : { [name]: kids }];
}

/** `gml:Point` -> `Point`. */
export function localName(qname: string): string {
  const i = qname.indexOf(":");
  return i < 0 ? qname : qname.slice(i + 1);
}

/** `gml:Point` -> `gml`; "" without a prefix. */
export function prefixOf(qname: string): string {
  const i = qname.indexOf(":");
  return i < 0 ? "" : qname.slice(0, i);
}

/** True for keys that name child elements (not attributes, text or CDATA). */
export function isElementKey(key: string): boolean {
  const c = key.charCodeAt(0);
  return c !== 64 /* @ */ && c !== 35 /* # */ && c !== 63; /* ? */
}

/** The value as a list: repeated children are arrays, single ones are not. */
export function asArray<T>(value: T | T[] | undefined): T[] {
  return value === undefined ? [] : Array.isArray(value) ? value : [value];
}

/** The root element of a parsed document: `[qualified name, element]`. */
export function rootElement(doc: XmlElement): [string, XmlValue] | undefined {
  for (const key in doc) if (isElementKey(key)) return [key, doc[key]!];
  return undefined;
}

/** The children of `node` with local name `local`, whatever their prefix, in document order per name. */
export function childrenByLocalName(node: XmlValue | undefined, local: string): XmlValue[] {
  if (node === undefined || typeof node === "string" || Array.isArray(node)) return [];
  const out: XmlValue[] = [];
  for (const key in node) {
    if (!isElementKey(key) || localName(key) !== local) continue;
    const v = node[key]!;
    if (Array.isArray(v)) for (const x of v) out.push(x);
    else out.push(v);
  }
  return out;
}

/** The first child of `node` with local name `local`. */
export function childByLocalName(node: XmlValue | undefined, local: string): XmlValue | undefined {
  return childrenByLocalName(node, local)[0];
}

/** Every descendant (and `node` itself when given as a document) with local name `local`, depth first. */
export function findElements(node: XmlValue | undefined, local: string, out: XmlValue[] = []): XmlValue[] {
  if (node === undefined || typeof node === "string") return out;
  if (Array.isArray(node)) {
    for (const x of node) findElements(x, local, out);
    return out;
  }
  for (const key in node) {
    if (!isElementKey(key)) continue;
    const v = node[key]!;
    if (localName(key) === local) for (const x of asArray(v)) out.push(x);
    findElements(v, local, out);
  }
  return out;
}

/** An attribute by qualified name (`gml:id`) or, when no prefix is given, by local name under any prefix. */
export function attr(node: XmlValue | undefined, name: string): string | undefined {
  if (node === undefined || typeof node === "string" || Array.isArray(node)) return undefined;
  const direct = node[ATTR + name];
  if (typeof direct === "string") return direct;
  if (name.includes(":")) return undefined;
  for (const key in node) {
    if (key.charCodeAt(0) === 64 && localName(key.slice(2)) === name) {
      const v = node[key];
      if (typeof v === "string") return v;
    }
  }
  return undefined;
}

/** The text content of an element: its own text and CDATA (child elements' text is not included). */
export function textOf(node: XmlValue | undefined): string {
  if (node === undefined) return "";
  if (typeof node === "string") return node;
  if (Array.isArray(node)) return node.map(textOf).join("");
  const t = node[TEXT];
  const c = node[CDATA];
  const text = t === undefined ? "" : typeof t === "string" ? t : textOf(t);
  return c === undefined ? text : text + textOf(c);
}

/** The namespace declarations on an element: URI by prefix ("" for the default namespace). */
export function namespacesOf(node: XmlValue | undefined): Map<string, string> {
  const out = new Map<string, string>();
  if (node === undefined || typeof node === "string" || Array.isArray(node)) return out;
  for (const key in node) {
    if (key === "@_xmlns") out.set("", String(node[key]));
    else if (key.startsWith("@_xmlns:")) out.set(key.slice(8), String(node[key]));
  }
  return out;
}

const ESC_TEXT = /[&<>\r\n]/;
const ESC_ATTR = /[&<>"'\t\n\r]/;

/**
 * Escapes text content: `&`, `<`, `>`, and line breaks as character references (CR would not survive
 * end-of-line normalisation; LF escaped keeps a feature on one line for line-framed channels).
 */
export function escapeXml(text: string): string {
  if (!ESC_TEXT.test(text)) return text;
  return text.replace(/[&<>\r\n]/g, (c) => (c === "&" ? "&amp;" : c === "<" ? "&lt;" : c === ">" ? "&gt;" : c === "\n" ? "&#10;" : "&#13;"));
}

/** Escapes an attribute value for either quote style; tabs and line breaks as references (attribute normalisation would turn them into spaces). */
export function escapeAttr(text: string): string {
  if (!ESC_ATTR.test(text)) return text;
  return text.replace(/[&<>"'\t\n\r]/g, (c) => {
    switch (c) {
      case "&":
        return "&amp;";
      case "<":
        return "&lt;";
      case ">":
        return "&gt;";
      case '"':
        return "&quot;";
      case "'":
        return "&apos;";
      case "\t":
        return "&#9;";
      case "\n":
        return "&#10;";
      default:
        return "&#13;";
    }
  });
}

/** One exception of an OWS ExceptionReport or an OGC ServiceExceptionReport. */
export interface ExceptionInfo {
  /** `exceptionCode` (OWS) or `code` (ServiceException), when given. */
  code?: string;
  locator?: string;
  /** The exception texts, joined by "; " when there are several. */
  text: string;
}

/**
 * The exception a server reported, when the document is an OWS `ExceptionReport` (WFS 1.1/2.0) or an
 * OGC `ServiceExceptionReport` (WFS 1.0); several exceptions are joined, the first one's code and locator kept.
 */
export function parseExceptionReport(doc: XmlElement): ExceptionInfo | undefined {
  const root = rootElement(doc);
  if (!root) return undefined;
  const [name, el] = root;
  const local = localName(name);
  let parts: ExceptionInfo[];
  if (local === "ExceptionReport") {
    parts = childrenByLocalName(el, "Exception").map((ex) => ({
      code: attr(ex, "exceptionCode"),
      locator: attr(ex, "locator"),
      text: childrenByLocalName(ex, "ExceptionText").map((t) => textOf(t).trim()).filter(Boolean).join("; "),
    }));
  } else if (local === "ServiceExceptionReport") {
    parts = childrenByLocalName(el, "ServiceException").map((ex) => ({ code: attr(ex, "code"), locator: attr(ex, "locator"), text: textOf(ex).trim() }));
  } else return undefined;
  const first = parts[0];
  const info: ExceptionInfo = { text: parts.map((p) => p.text).filter(Boolean).join("; ") };
  if (first?.code !== undefined) info.code = first.code;
  if (first?.locator !== undefined) info.locator = first.locator;
  if (info.text === "") info.text = info.code ?? "the server reported an exception without text";
  return info;
}
