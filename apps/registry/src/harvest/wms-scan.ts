import type { BBox } from "../storage/types.js";
import { cleanBBox, parseTimeExtent } from "./types.js";
import { decodeEntities } from "./xml.js";

/** A time extent: start and end in epoch ms, null for an open end. */
export type Time = { start: number | null; end: number | null };

/** A WMS layer's own properties (not yet inherited), as either reading (the scanner or fast-xml-parser's) gives them. */
export interface LayerOwn {
  name: string;
  title: string;
  abstract: string;
  keywords: string[];
  crs: string[];
  bbox: BBox | null;
  time: Time | undefined;
}

/** A WMS layer's own properties and its child layers. */
export interface LayerTree extends LayerOwn {
  children: LayerTree[];
}

// What an open element is to the scanner.
const SKIP = 0; // nothing in it is read
const LAYER = 1;
const TEXT = 2; // its own text is read (Name, Title, Abstract, Keyword, CRS, SRS, Dimension, Extent, a bound)
const KEYWORDS = 3; // the layer's first KeywordList
const GEO = 4; // the layer's first EX_GeographicBoundingBox
const LATLON = 5; // the layer's first LatLonBoundingBox
const CAPABILITY = 6;
const ROOT = 7;

// What a TEXT element's text becomes.
const T_NAME = 0;
const T_TITLE = 1;
const T_ABSTRACT = 2;
const T_KEYWORD = 3;
const T_CRS = 4;
const T_SRS = 5;
const T_DIMENSION = 6;
const T_EXTENT = 7;
const T_BOUND = 8;

interface Building {
  tree: LayerTree;
  seen: number; // bits: Name, Title, Abstract, KeywordList, EX_GeographicBoundingBox, LatLonBoundingBox
  geo: Record<string, string> | null; // the first EX_GeographicBoundingBox's bounds; null when it is empty
  latLon: Record<string, string> | null;
  times: { dimension: boolean; name: string; text: string }[];
}

const ATTRIBUTE = /([^\s=/>"']+)\s*=\s*(?:"([^"]*)"|'([^']*)')/g;

/** An element's attributes by local name, decoded; xmlns declarations left out (as removeNSPrefix does). */
function attributes(tag: string): Record<string, string> | undefined {
  let out: Record<string, string> | undefined;
  ATTRIBUTE.lastIndex = 0;
  for (let m = ATTRIBUTE.exec(tag); m; m = ATTRIBUTE.exec(tag)) {
    const full = m[1]!;
    const colon = full.indexOf(":");
    if (full === "xmlns" || (colon > 0 && full.slice(0, colon) === "xmlns")) continue;
    const local = colon > 0 && full.indexOf(":", colon + 1) < 0 ? full.slice(colon + 1) : full;
    (out ??= {})[local] = decodeEntities((m[2] ?? m[3] ?? "").trim());
  }
  return out;
}

/** Where the local name of a tag name in [start, end) begins: after its prefix when it has exactly one colon. */
function localStart(text: string, start: number, end: number): number {
  let colon = -1;
  for (let i = start; i < end; i++) {
    if (text.charCodeAt(i) !== 58 /* : */) continue;
    if (colon >= 0) return start; // two colons: fast-xml-parser keeps the whole name
    colon = i;
  }
  return colon < 0 ? start : colon + 1;
}

/** Whether the name in [start, end) is `word`, compared in place. */
function named(text: string, start: number, end: number, word: string): boolean {
  return end - start === word.length && text.startsWith(word, start);
}

function finish(b: Building, extents: Map<string, Time>): LayerTree {
  const t = b.tree;
  if (b.geo) {
    const v = b.geo;
    t.bbox = cleanBBox([v.westBoundLongitude ?? "", v.southBoundLatitude ?? "", v.eastBoundLongitude ?? "", v.northBoundLatitude ?? ""].map(Number));
  } else if (b.latLon) {
    const v = b.latLon;
    t.bbox = cleanBBox([v.minx, v.miny, v.maxx, v.maxy].map(Number));
  }
  // Dimension (1.3.0) before Extent (1.1.1): the first named "time" with a value.
  for (const dimension of [true, false]) {
    if (t.time) break;
    for (const d of b.times) {
      if (d.dimension !== dimension || d.name.toLowerCase() !== "time" || !d.text) continue;
      let time = extents.get(d.text);
      if (time === undefined) extents.set(d.text, (time = parseTimeExtent(d.text)));
      t.time = time;
      break;
    }
  }
  return t;
}

/**
 * The layer tree of a WMS capabilities document in one pass over its text, reading only what a layer record
 * needs (the elements readLayer reads, with the same first-one-wins rules and text and entity handling as
 * fast-xml-parser's output gives them), and the ranges of the top-level Layer elements so the rest of the
 * document can go to fast-xml-parser without them.
 *
 * Runs only on text that checkXml returned: no DOCTYPE, no ENTITY declaration, well-formed (tags matched, quoted
 * attributes, one root), so it finds tags without judging them. Returns undefined for documents it does not
 * expect (another root, an empty root): the caller then reads the document through fast-xml-parser alone.
 */
export function scanWmsLayers(text: string, extents: Map<string, Time>): { layers: LayerTree[]; ranges: [number, number][] } | undefined {
  const s = new Scanner(text, extents);
  try {
    s.run();
  } catch (err) {
    if (err === NOT_EXPECTED) return undefined;
    throw err;
  }
  return s.rootSeen ? { layers: s.layers, ranges: s.ranges } : undefined;
}

// The scanner's state lives in fields of fixed types and its steps are methods, so the engine optimises them
// once for every document (closures made per call would be new functions each time).
class Scanner {
  readonly kinds: number[] = [];
  readonly textKinds: number[] = []; // the T_* of a TEXT element, -1 otherwise
  readonly names: string[] = []; // local names of TEXT elements under GEO (their bound), "" otherwise
  readonly open: Building[] = [];
  readonly layers: LayerTree[] = [];
  readonly ranges: [number, number][] = [];
  capabilities = 0;
  rootSeen = false;
  // Text of the innermost element since its last child, as fast-xml-parser collects it (comments do not cut it):
  // the span [pendingFrom, pendingTo) of the text, joined onto `pending` only when a comment splits it.
  pending = "";
  pendingFrom = -1;
  pendingTo = -1;
  acc = ""; // the innermost TEXT element's text so far
  hasKids = false; // the innermost GEO / LATLON element has a child node (element or text)
  rangeStart = -1;
  dimensionAttr = ""; // the name attribute of the open Dimension / Extent

  constructor(
    readonly text: string,
    readonly extents: Map<string, Time>,
  ) {}

  flush(): void {
    if (this.pendingFrom < 0 && this.pending === "") return;
    const top = this.kinds[this.kinds.length - 1];
    if (top === TEXT || top === GEO || top === LATLON) {
      const seg = (this.pending === "" ? this.text.slice(this.pendingFrom, this.pendingTo) : this.pendingFrom < 0 ? this.pending : this.pending + this.text.slice(this.pendingFrom, this.pendingTo)).trim();
      if (seg !== "") {
        if (top === TEXT) this.acc += decodeEntities(seg);
        else this.hasKids = true;
      }
    }
    this.pending = "";
    this.pendingFrom = -1;
  }

  closeText(): void {
    const value = this.acc.trim();
    this.acc = "";
    const tk = this.textKinds[this.textKinds.length - 1]!;
    const parentKind = this.kinds[this.kinds.length - 2];
    const b = this.open[this.open.length - 1];
    if (parentKind === GEO) {
      const name = this.names[this.names.length - 1]!;
      if (b?.geo && b.geo[name] === undefined) b.geo[name] = value;
      return;
    }
    if (!b) return;
    const t = b.tree;
    switch (tk) {
      case T_NAME: t.name = value; break;
      case T_TITLE: t.title = value; break;
      case T_ABSTRACT: t.abstract = value; break;
      case T_KEYWORD: if (value) t.keywords.push(value); break;
      case T_CRS: if (value) t.crs.push(value); break;
      case T_SRS: for (const s of value.split(/\s+/)) if (s) t.crs.push(s); break;
      case T_DIMENSION:
      case T_EXTENT: b.times.push({ dimension: tk === T_DIMENSION, name: this.dimensionAttr, text: value }); break;
    }
  }

  openElement(tagStart: number, nameEnd: number, tagEnd: number): void {
    const parent = this.kinds.length ? this.kinds[this.kinds.length - 1]! : -1;
    // The element's local name is compared in place (no string made for the thousands of elements read).
    const ls = parent === SKIP || parent === TEXT ? 0 : localStart(this.text, tagStart + 1, nameEnd);
    let kind = SKIP;
    let tk = -1;
    let bound = "";
    if (parent === SKIP || parent === TEXT) {
      // inside something not read, or an element inside a text element (its text is not the parent's own)
      if (parent === TEXT) this.hasKids = true;
    } else if (parent === -1) {
      if (this.rootSeen || !(named(this.text, ls, nameEnd, "WMS_Capabilities") || named(this.text, ls, nameEnd, "WMT_MS_Capabilities"))) throw NOT_EXPECTED;
      this.rootSeen = true;
      kind = ROOT;
    } else if (parent === ROOT) {
      if (named(this.text, ls, nameEnd, "Capability") && this.capabilities++ === 0) kind = CAPABILITY;
    } else if (parent === CAPABILITY) {
      if (named(this.text, ls, nameEnd, "Layer")) {
        kind = LAYER;
        this.rangeStart = tagStart;
      }
    } else if (parent === GEO || parent === LATLON) {
      this.hasKids = true;
      if (parent === GEO) {
        kind = TEXT;
        tk = T_BOUND;
        bound = this.text.slice(ls, nameEnd);
      }
    } else if (parent === KEYWORDS) {
      if (named(this.text, ls, nameEnd, "Keyword")) { kind = TEXT; tk = T_KEYWORD; }
    } else if (parent === LAYER) {
      const b = this.open[this.open.length - 1]!;
      if (named(this.text, ls, nameEnd, "Name")) {
        if (!(b.seen & 1)) { kind = TEXT; tk = T_NAME; b.seen = b.seen | 1; }
      } else if (named(this.text, ls, nameEnd, "Title")) {
        if (!(b.seen & 2)) { kind = TEXT; tk = T_TITLE; b.seen = b.seen | 2; }
      } else if (named(this.text, ls, nameEnd, "Abstract")) {
        if (!(b.seen & 4)) { kind = TEXT; tk = T_ABSTRACT; b.seen = b.seen | 4; }
      } else if (named(this.text, ls, nameEnd, "KeywordList")) {
        if (!(b.seen & 8)) { kind = KEYWORDS; b.seen = b.seen | 8; }
      } else if (named(this.text, ls, nameEnd, "CRS")) {
        kind = TEXT;
        tk = T_CRS;
      } else if (named(this.text, ls, nameEnd, "SRS")) {
        kind = TEXT;
        tk = T_SRS;
      } else if (named(this.text, ls, nameEnd, "EX_GeographicBoundingBox")) {
        if (!(b.seen & 16)) {
          b.seen |= 16;
          kind = GEO;
          b.geo = {};
          // An element with attributes is not empty even without content (no "=": no attribute to read).
          this.hasKids = this.text.indexOf("=", nameEnd) < tagEnd && attributes(this.text.slice(nameEnd, tagEnd)) !== undefined;
        }
      } else if (named(this.text, ls, nameEnd, "LatLonBoundingBox")) {
        if (!(b.seen & 32)) {
          b.seen |= 32;
          kind = LATLON;
          const a = attributes(this.text.slice(nameEnd, tagEnd));
          b.latLon = a ?? {};
          this.hasKids = a !== undefined;
        }
      } else if (named(this.text, ls, nameEnd, "Dimension") || named(this.text, ls, nameEnd, "Extent")) {
        kind = TEXT;
        tk = named(this.text, ls, nameEnd, "Dimension") ? T_DIMENSION : T_EXTENT;
        this.dimensionAttr = attributes(this.text.slice(nameEnd, tagEnd))?.name ?? "";
      } else if (named(this.text, ls, nameEnd, "Layer")) {
        kind = LAYER;
      }
    }
    if (kind === LAYER) {
      this.open.push({ tree: { name: "", title: "", abstract: "", keywords: [], crs: [], bbox: null, time: undefined, children: [] }, seen: 0, geo: null, latLon: null, times: [] });
    }
    if (kind === TEXT) this.acc = "";
    this.kinds.push(kind);
    this.textKinds.push(tk);
    this.names.push(bound);
  }

  closeElement(end: number): void {
    const kind = this.kinds[this.kinds.length - 1];
    if (kind === TEXT) this.closeText();
    else if ((kind === GEO || kind === LATLON) && !this.hasKids) {
      // Empty (no attribute, no content): as if absent, but still the first one (readLayer's `geo ??= c`).
      const b = this.open[this.open.length - 1]!;
      if (kind === GEO) b.geo = null;
      else b.latLon = null;
    } else if (kind === LAYER) {
      const b = this.open.pop()!;
      const tree = finish(b, this.extents);
      const parent = this.open[this.open.length - 1];
      if (parent) parent.tree.children.push(tree);
      else {
        this.layers.push(tree);
        this.ranges.push([this.rangeStart, end]);
      }
    }
    if (kind === GEO || kind === LATLON) this.hasKids = false;
    this.kinds.pop();
    this.textKinds.pop();
    this.names.pop();
  }

  run(): void {
    const text = this.text;
    const n = text.length;
    let i = text.indexOf("<");
    let last = 0;
    while (i >= 0) {
      // Text since the last markup belongs to the innermost open element.
      if (i > last && this.kinds.length) {
        const top = this.kinds[this.kinds.length - 1];
        if (top === TEXT || top === GEO || top === LATLON) {
          if (this.pendingFrom >= 0) this.pending += text.slice(this.pendingFrom, this.pendingTo);
          this.pendingFrom = last;
          this.pendingTo = i;
        }
      }
      const c = text.charCodeAt(i + 1);
      let next: number;
      if (c === 33 /* ! */) {
        if (text.startsWith("<!--", i)) {
          next = text.indexOf("-->", i + 4) + 3; // comments do not cut the text around them
        } else {
          // CDATA: its content is a text node of its own, untrimmed and kept even when empty.
          const j = text.indexOf("]]>", i + 9);
          this.flush();
          const top = this.kinds[this.kinds.length - 1];
          if (top === TEXT) this.acc += decodeEntities(text.slice(i + 9, j));
          else if (top === GEO || top === LATLON) this.hasKids = true;
          next = j + 3;
        }
      } else if (c === 63 /* ? */) {
        this.flush();
        next = text.indexOf("?>", i + 2) + 2;
      } else if (c === 47 /* / */) {
        this.flush();
        next = text.indexOf(">", i + 2) + 1;
        this.closeElement(next);
      } else {
        this.flush();
        let j = i + 1;
        let ch = text.charCodeAt(j);
        while (j < n && ch !== 32 && ch !== 62 && ch !== 47 && ch !== 9 && ch !== 10 && ch !== 13) ch = text.charCodeAt(++j);
        const nameEnd = j;
        // The end of the tag, over quoted attribute values (which may hold ">").
        while (ch !== 62) {
          if (ch === 34 || ch === 39) j = text.indexOf(ch === 34 ? '"' : "'", j + 1);
          ch = text.charCodeAt(++j);
        }
        next = j + 1;
        const selfClosing = text.charCodeAt(j - 1) === 47;
        this.openElement(i, nameEnd, selfClosing ? j - 1 : j);
        if (selfClosing) this.closeElement(next);
      }
      last = next;
      i = text.indexOf("<", next);
    }
  }
}

const NOT_EXPECTED = new Error("not a WMS capabilities document the scanner reads");
