import { describe, expect, it } from "vitest";
import { xmlStructureError } from "../src/xml-structure.js";
import type { XmlStructure } from "../src/xml-structure.js";

describe("xmlStructureError", () => {
  it("accepts well-formed documents: prolog, comments, CDATA, self-closing tags, quoted attributes", () => {
    const doc = '\uFEFF<?xml version="1.0"?>\n<!-- a -->\n<a x="1" y=\'2\'><b/><![CDATA[<not a tag>]]><c k="v">t</c></a>\n<!-- end -->\n';
    expect(xmlStructureError(doc)).toBeUndefined();
  });

  it.each([
    ["<a><b></a>", "closing tag </a> does not match <b>", 1],
    ["<a>\n<b>\n", "element <b> is not closed (the document ends inside it)", 3],
    ["<a></a><a/>", "a second root element <a>", 1],
    ["<a/>\ntrailing", "text after the root element", 1],
    ["lead<a/>", "text before the root element", 1],
    ["<![CDATA[x]]><a/>", "CDATA outside the root element", 1],
    ["<a><!-- x </a>", "comment is not closed", 1],
    ["<a x=1/>", "tag <a> has a malformed attribute", 1],
    ["<a><\n/a>", "tag without a name", 1],
    ["<!DOCTYPE a><a/>", "unexpected markup declaration", 1],
    ["   ", "no root element", 1],
  ])("%j: %s", (doc, message, line) => {
    expect(xmlStructureError(doc)).toMatchObject({ message, line });
  });

  it("limits nesting depth and reports the root's children spans", () => {
    expect(xmlStructureError("<a><b><c/></b></a>", { maxDepth: 2 })).toBeUndefined();
    expect(xmlStructureError("<a><b><c></c></b></a>", { maxDepth: 2 })?.message).toBe("elements nest deeper than the limit of 2");
    const out: XmlStructure = { spans: [], rootName: "", rootStart: 0, rootOpenEnd: 0 };
    const doc = '<r n="1"><x>1</x><y/><x><z/></x></r>';
    expect(xmlStructureError(doc, { out })).toBeUndefined();
    expect(out.rootName).toBe("r");
    expect(doc.slice(out.rootStart, out.rootOpenEnd)).toBe('<r n="1">');
    const kids: string[] = [];
    for (let i = 0; i < out.spans.length; i += 2) kids.push(doc.slice(out.spans[i], out.spans[i + 1]));
    expect(kids).toEqual(["<x>1</x>", "<y/>", "<x><z/></x>"]);
  });
});
