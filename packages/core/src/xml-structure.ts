/**
 * The structure check every XML reader in GeoWatch runs before its parser: fast-xml-parser accepts documents that
 * are not well-formed (a truncated response, a mismatched closing tag, a second root), and its own validator costs
 * as much as the parse. One scan from `<` to `<`, no allocation per element beyond the open-element stack.
 */

/** Where the root's children are, for readers that parse them one at a time (filled when given to the scan). */
export interface XmlStructure {
  /** Start and end offsets of each child element of the root, in pairs. */
  spans: number[];
  rootName: string;
  rootStart: number;
  /** Offset just after the root's start tag. */
  rootOpenEnd: number;
}

export interface XmlStructureOptions {
  /** Deepest element nesting accepted (default: no limit). */
  maxDepth?: number;
  /** Filled with the root's name and its children's spans. */
  out?: XmlStructure;
}

/** A structure problem: what is wrong, its offset in the text and its line (1-based). */
export interface XmlStructureProblem {
  message: string;
  index: number;
  line: number;
}

const NAME_END = /[\s/>]/g;
const TAG_REST = /[^"'>]*(?:(?:"[^"]*"|'[^']*')[^"'>]*)*>/y;
const ATTRIBUTES = /^(?:\s+[^\s=/>"']+\s*=\s*(?:"[^"<]*"|'[^'<]*'))*\s*\/?>$/;

/** The 1-based line of an offset in a text. */
export function lineAt(text: string, index: number): number {
  let line = 1;
  for (let i = text.indexOf("\n"); i >= 0 && i < index; i = text.indexOf("\n", i + 1)) line++;
  return line;
}

/**
 * The first place where a document is not well-formed as far as structure goes, or undefined: a closing tag that
 * does not match the open one, an element left open (the document ends inside it), an unclosed comment, CDATA
 * section, processing instruction or tag, a tag without a name, an attribute without a quoted value, a second
 * root, CDATA or text outside the root, an element nesting deeper than `maxDepth`. Declarations (`<!DOCTYPE`,
 * `<!ENTITY`) are "unexpected markup": callers refuse or strip them before this scan.
 */
export function xmlStructureError(text: string, opts: XmlStructureOptions = {}): XmlStructureProblem | undefined {
  const bad = scan(text, opts.maxDepth ?? Infinity, opts.out);
  return bad && { message: bad.msg, index: bad.index, line: lineAt(text, bad.index) };
}

function scan(text: string, maxDepth: number, out: XmlStructure | undefined): { msg: string; index: number } | undefined {
  const stack: string[] = [];
  let roots = 0;
  let childStart = 0;
  let i = text.indexOf("<");
  if (i < 0) return { msg: "no root element", index: 0 };
  if (text.slice(0, i).trim() !== "") return { msg: "text before the root element", index: 0 };
  while (i >= 0) {
    const c = text.charCodeAt(i + 1);
    let next: number;
    if (c === 33 /* ! */) {
      const comment = text.startsWith("<!--", i);
      if (!comment && !text.startsWith("<![CDATA[", i)) return { msg: "unexpected markup declaration", index: i };
      const j = text.indexOf(comment ? "-->" : "]]>", i + 4);
      if (j < 0) return { msg: `${comment ? "comment" : "CDATA section"} is not closed`, index: i };
      if (!comment && stack.length === 0) return { msg: "CDATA outside the root element", index: i };
      next = j + 3;
    } else if (c === 63 /* ? */) {
      const j = text.indexOf("?>", i + 2);
      if (j < 0) return { msg: "processing instruction is not closed", index: i };
      next = j + 2;
    } else if (c === 47 /* / */) {
      const j = text.indexOf(">", i + 2);
      if (j < 0) return { msg: "closing tag is not closed", index: i };
      const name = text.slice(i + 2, j).trim();
      const open = stack.pop();
      if (open !== name) return { msg: open === undefined ? `closing tag </${name}> without an open element` : `closing tag </${name}> does not match <${open}>`, index: i };
      next = j + 1;
      if (out && stack.length === 1) out.spans.push(childStart, next);
    } else {
      NAME_END.lastIndex = i + 1;
      const m = NAME_END.exec(text);
      if (!m) return { msg: "tag is not closed", index: i };
      const name = text.slice(i + 1, m.index);
      if (name === "") return { msg: "tag without a name", index: i };
      TAG_REST.lastIndex = m.index;
      if (!TAG_REST.test(text)) return { msg: `tag <${name}> is not closed`, index: i };
      next = TAG_REST.lastIndex;
      const selfClosing = text.charCodeAt(next - 2) === 47; /* / */
      if (next - m.index > 2 && !ATTRIBUTES.test(text.slice(m.index, next))) return { msg: `tag <${name}> has a malformed attribute`, index: i };
      if (stack.length === 0) {
        if (++roots > 1) return { msg: `a second root element <${name}>`, index: i };
        if (out) [out.rootName, out.rootStart, out.rootOpenEnd] = [name, i, next];
      } else if (out && stack.length === 1) {
        if (selfClosing) out.spans.push(i, next);
        else childStart = i;
      }
      if (!selfClosing && stack.push(name) > maxDepth) return { msg: `elements nest deeper than the limit of ${maxDepth}`, index: i };
    }
    i = text.indexOf("<", next);
    if (stack.length === 0) {
      const end = i < 0 ? text.length : i;
      if (text.slice(next, end).trim() !== "") return { msg: "text after the root element", index: next };
    }
  }
  if (stack.length > 0) return { msg: `element <${stack[stack.length - 1]}> is not closed (the document ends inside it)`, index: text.length };
  if (roots === 0) return { msg: "no root element", index: 0 };
  return undefined;
}
