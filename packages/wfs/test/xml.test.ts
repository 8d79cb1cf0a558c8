import { isGeoWatchError } from "@geowatch/core";
import { describe, expect, it } from "vitest";
import {
  attr, childrenByLocalName, decodeEntities, escapeAttr, escapeXml, findElements, parseExceptionReport, parseXml, rootElement, textOf,
} from "../src/xml.js";

function xmlError(fn: () => unknown): Error & { code?: string } {
  try {
    fn();
  } catch (err) {
    return err as Error & { code?: string };
  }
  throw new Error("expected an error");
}

const BILLION_LAUGHS = `<?xml version="1.0"?>
<!DOCTYPE lolz [
 <!ENTITY lol "lol">
 <!ENTITY lol1 "&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;">
 <!ENTITY lol2 "&lol1;&lol1;&lol1;&lol1;&lol1;&lol1;&lol1;&lol1;&lol1;&lol1;">
 <!ENTITY lol3 "&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;">
]>
<lolz>&lol3;</lolz>`;

const XXE = `<?xml version="1.0"?>
<!DOCTYPE foo [ <!ENTITY xxe SYSTEM "file:///etc/passwd"> ]>
<wfs:FeatureCollection xmlns:wfs="http://www.opengis.net/wfs/2.0"><wfs:member><p>&xxe;</p></wfs:member></wfs:FeatureCollection>`;

describe("parseXml refuses what could expand", () => {
  it("rejects a billion-laughs document before parsing, naming the line", () => {
    const err = xmlError(() => parseXml(BILLION_LAUGHS));
    expect(isGeoWatchError(err, "XML")).toBe(true);
    expect(err.message).toContain("DOCTYPE/entity declarations are not accepted (at line 2)");
  });

  it("rejects an external entity (file:///etc/passwd) and never reads the file", () => {
    const err = xmlError(() => parseXml(XXE, { what: "GetFeature response" }));
    expect(isGeoWatchError(err, "XML")).toBe(true);
    expect(err.message).toContain("GetFeature response: DOCTYPE/entity declarations are not accepted (at line 2)");
    expect(err.message).not.toContain("root:");
  });

  it("rejects a bare ENTITY declaration and a lower-case doctype as bytes", () => {
    expect(xmlError(() => parseXml(new TextEncoder().encode("<a/>\n<!doctype a>"))).message).toContain("(at line 2)");
    expect(xmlError(() => parseXml('<!ENTITY x "y"><a/>')).message).toContain("not accepted");
  });

  it("leaves an undeclared entity in text as written: nothing is expanded", () => {
    const doc = parseXml("<a><b>&xxe; &lol3; &amp;xxe;</b><c k='&xxe;'/></a>");
    const a = rootElement(doc)![1];
    expect(textOf(childrenByLocalName(a, "b")[0])).toBe("&xxe; &lol3; &xxe;");
    expect(attr(childrenByLocalName(a, "c")[0], "k")).toBe("&xxe;");
  });

  it("decodes the predefined entities and character references, in text and attributes", () => {
    const doc = parseXml(`<a k="&lt;&quot;&apos;&gt;&#10;"><b>1 &lt; 2 &amp;&amp; &#x263A; &#9731;</b></a>`);
    const a = rootElement(doc)![1];
    expect(attr(a, "k")).toBe(`<"'>\n`);
    expect(textOf(childrenByLocalName(a, "b")[0])).toBe("1 < 2 && \u263a \u2603");
    expect(decodeEntities("&#0; &#xD800; &bogus")).toBe("&#0; &#xD800; &bogus");
  });

  it("keeps CDATA as written (no entity decoding inside)", () => {
    const doc = parseXml("<a><![CDATA[<b>&amp;</b>]]></a>");
    expect(textOf(rootElement(doc)![1])).toBe("<b>&amp;</b>");
  });
});

describe("parseXml limits and errors", () => {
  it("refuses a document over maxBytes, text or bytes", () => {
    const big = `<a>${"x".repeat(2000)}</a>`;
    expect(xmlError(() => parseXml(big, { maxBytes: 1000 })).message).toContain("larger than the limit of 1000 bytes");
    expect(xmlError(() => parseXml(new TextEncoder().encode(big), { maxBytes: 1000 })).message).toContain("2007 bytes is larger");
    // Multi-byte characters count as their UTF-8 bytes.
    expect(xmlError(() => parseXml(`<a>${"\u00e9".repeat(600)}</a>`, { maxBytes: 1000 })).message).toContain("larger than the limit");
    expect(parseXml(big, { maxBytes: 4000 })).toBeTruthy();
  });

  it("refuses nesting deeper than maxDepth", () => {
    const deep = "<a>".repeat(50) + "</a>".repeat(50);
    const err = xmlError(() => parseXml(deep, { maxDepth: 20, validate: false }));
    expect(isGeoWatchError(err, "XML")).toBe(true);
    expect(err.message).toContain("nest deeper than the limit of 20");
    expect(parseXml(deep, { maxDepth: 60 })).toBeTruthy();
    // The structure check stops at the limit too, before any tree is built.
    const e2 = xmlError(() => parseXml(deep, { maxDepth: 20 }));
    expect(e2.message).toContain("not well-formed XML: elements nest deeper than the limit of 20 (line 1 column 61)");
  });

  it("reports mismatched tags with line and column", () => {
    const err = xmlError(() => parseXml("<a>\n<b></c>\n</a>"));
    expect(isGeoWatchError(err, "XML")).toBe(true);
    expect(err.message).toContain("not well-formed XML: closing tag </c> does not match <b> (line 2 column 4)");
  });

  it("refuses a truncated document, a second root, unclosed comments and tags", () => {
    const truncated = `<wfs:FeatureCollection xmlns:wfs="w">\n<wfs:member><f/></wfs:member>\n<wfs:member><f>`;
    expect(xmlError(() => parseXml(truncated)).message).toContain("element <f> is not closed (the document ends inside it) (line 3");
    expect(xmlError(() => parseXml("<a/><b/>")).message).toContain("a second root element <b>");
    expect(xmlError(() => parseXml("<a><!-- x </a>")).message).toContain("comment is not closed");
    expect(xmlError(() => parseXml('<a k="x>')).message).toContain("tag <a> is not closed");
    expect(xmlError(() => parseXml("</a>")).message).toContain("closing tag </a> without an open element");
    expect(xmlError(() => parseXml("just text")).message).toContain("no root element");
    // Quoted '>' and '/' inside attributes, comments, CDATA and PIs are not structure.
    const ok = parseXml(`<?xml version="1.0"?><!-- c --><a k="1 > 0" j='/>'><?pi x?><![CDATA[</a>]]><b/></a>`);
    expect(textOf(rootElement(ok)![1])).toBe("</a>");
  });

  it("reports invalid UTF-8 and empty input", () => {
    expect(xmlError(() => parseXml(new Uint8Array([0x3c, 0x61, 0x3e, 0xff, 0x3c, 0x2f, 0x61, 0x3e]))).message).toContain("not valid UTF-8");
    expect(xmlError(() => parseXml("  ")).message).toContain("empty document");
  });
});

describe("namespace helpers", () => {
  it("finds elements by local name whatever their prefix", () => {
    const doc = parseXml(`<wfs:FeatureCollection xmlns:wfs="w" xmlns:x="g" xmlns:gml="g"><wfs:member><x:Point/></wfs:member><wfs:member><gml:Point/></wfs:member></wfs:FeatureCollection>`);
    expect(findElements(doc, "Point")).toHaveLength(2);
    expect(childrenByLocalName(rootElement(doc)![1], "member")).toHaveLength(2);
  });
});

describe("escaping", () => {
  it("escapes text and attributes so they parse back unchanged", () => {
    const nasty = `a & b < c > d " e ' f\tg\nh\ri ]]> &amp;`;
    const doc = parseXml(`<r k="${escapeAttr(nasty)}" j='${escapeAttr(nasty)}'>${escapeXml(nasty)}</r>`);
    const r = rootElement(doc)![1];
    expect(textOf(r)).toBe(nasty);
    expect(attr(r, "k")).toBe(nasty);
    expect(attr(r, "j")).toBe(nasty);
    expect(escapeXml("plain")).toBe("plain");
  });
});

describe("parseExceptionReport", () => {
  it("reads an OWS ExceptionReport", () => {
    const doc = parseXml(`<?xml version="1.0" encoding="UTF-8"?>
<ows:ExceptionReport xmlns:ows="http://www.opengis.net/ows/1.1" version="2.0.0">
  <ows:Exception exceptionCode="InvalidParameterValue" locator="typeName">
    <ows:ExceptionText>Feature type nope &amp; unknown</ows:ExceptionText>
  </ows:Exception>
</ows:ExceptionReport>`);
    expect(parseExceptionReport(doc)).toEqual({ code: "InvalidParameterValue", locator: "typeName", text: "Feature type nope & unknown" });
  });

  it("reads a WFS 1.0 ServiceExceptionReport and joins several exceptions", () => {
    const doc = parseXml(`<ServiceExceptionReport xmlns="http://www.opengis.net/ogc" version="1.2.0">
<ServiceException code="RequestNotWellFormed">first</ServiceException>
<ServiceException>second</ServiceException></ServiceExceptionReport>`);
    expect(parseExceptionReport(doc)).toEqual({ code: "RequestNotWellFormed", text: "first; second" });
  });

  it("is undefined for other documents", () => {
    expect(parseExceptionReport(parseXml("<wfs:TransactionResponse xmlns:wfs='x'/>"))).toBeUndefined();
  });
});
