/** Atom 1.0 and RSS 2.0 documents with GeoRSS Simple, every text escaped. */
import type { EntryGeo, StoredEntry } from "./db.js";

const ATOM_NS = "http://www.w3.org/2005/Atom";
const GEORSS_NS = "http://www.georss.org/georss";

/**
 * Text and attribute values as XML 1.0 allows them: the five special characters escaped, and characters XML
 * cannot carry at all (C0 controls other than tab/CR/LF, lone surrogates, U+FFFE/U+FFFF) replaced by U+FFFD.
 */
export function escapeXml(value: string): string {
  return value
    .replace(/[\u0000-\u0008\u000B\u000C\u000E-\u001F\uFFFE\uFFFF]|[\uD800-\uDBFF](?![\uDC00-\uDFFF])|(?<![\uD800-\uDBFF])[\uDC00-\uDFFF]/g, "\uFFFD")
    .replace(/[&<>"']/g, (c) => ({ "&": "&amp;", "<": "&lt;", ">": "&gt;", '"': "&quot;", "'": "&apos;" })[c]!);
}

/** `lat lon` pairs, as GeoRSS Simple orders them. */
const latLon = (pairs: Array<[number, number]>) => pairs.map(([lon, lat]) => `${lat} ${lon}`).join(" ");

/** The GeoRSS Simple element of an entry's geometry. */
export function georss(geo: EntryGeo | undefined): string {
  if (!geo) return "";
  switch (geo.type) {
    case "point":
      return `<georss:point>${latLon([geo.coordinates])}</georss:point>`;
    case "line":
      return `<georss:line>${latLon(geo.coordinates)}</georss:line>`;
    case "polygon":
      return `<georss:polygon>${latLon(geo.coordinates)}</georss:polygon>`;
    case "box": {
      const [minx, miny, maxx, maxy] = geo.bbox;
      return `<georss:box>${miny} ${minx} ${maxy} ${maxx}</georss:box>`;
    }
  }
}

export interface FeedInfo {
  user: string;
  title: string;
  /** Self URL of this document (no token in it). */
  self: string;
  /** The other format's URL. */
  alternate: string;
}

const newest = (entries: StoredEntry[]) => entries.reduce((m, e) => (e.updated > m ? e.updated : m), "1970-01-01T00:00:00.000Z");

/** A tag URI per entry, stable across renders (RFC 4151 needs no registration). */
const entryUri = (user: string, id: string) => `tag:geowatch,2026:${encodeURIComponent(user)}/${encodeURIComponent(id)}`;

export function atom(info: FeedInfo, entries: StoredEntry[]): string {
  const x = escapeXml;
  const out = [
    `<?xml version="1.0" encoding="utf-8"?>`,
    `<feed xmlns="${ATOM_NS}" xmlns:georss="${GEORSS_NS}">`,
    `<id>${x(entryUri(info.user, ""))}</id>`,
    `<title type="text">${x(info.title)}</title>`,
    `<updated>${newest(entries)}</updated>`,
    `<link rel="self" type="application/atom+xml" href="${x(info.self)}"/>`,
    `<link rel="alternate" type="application/rss+xml" href="${x(info.alternate)}"/>`,
    `<author><name>GeoWatch</name></author>`,
    `<generator>GeoWatch</generator>`,
  ];
  for (const e of entries) {
    out.push(
      "<entry>",
      `<id>${x(entryUri(info.user, e.id))}</id>`,
      `<title type="text">${x(e.title)}</title>`,
      `<updated>${x(e.updated)}</updated>`,
      `<published>${x(e.updated)}</published>`,
    );
    if (e.link) out.push(`<link rel="alternate" href="${x(e.link)}"/>`);
    for (const c of e.categories ?? []) out.push(`<category term="${x(c)}"/>`);
    if (e.summary) out.push(`<summary type="text">${x(e.summary)}</summary>`);
    out.push(`<content type="text">${x(e.content)}</content>`, georss(e.geo), "</entry>");
  }
  out.push("</feed>", "");
  return out.filter((l) => l !== "").join("\n") + "\n";
}

export function rss(info: FeedInfo, entries: StoredEntry[]): string {
  const x = escapeXml;
  const out = [
    `<?xml version="1.0" encoding="utf-8"?>`,
    `<rss version="2.0" xmlns:atom="${ATOM_NS}" xmlns:georss="${GEORSS_NS}">`,
    "<channel>",
    `<title>${x(info.title)}</title>`,
    `<link>${x(info.self)}</link>`,
    `<description>${x(info.title)}</description>`,
    `<atom:link rel="self" type="application/rss+xml" href="${x(info.self)}"/>`,
    `<lastBuildDate>${new Date(newest(entries)).toUTCString()}</lastBuildDate>`,
    `<generator>GeoWatch</generator>`,
  ];
  for (const e of entries) {
    out.push("<item>", `<title>${x(e.title)}</title>`);
    if (e.link) out.push(`<link>${x(e.link)}</link>`);
    out.push(`<guid isPermaLink="false">${x(entryUri(info.user, e.id))}</guid>`, `<pubDate>${new Date(e.updated).toUTCString()}</pubDate>`);
    for (const c of e.categories ?? []) out.push(`<category>${x(c)}</category>`);
    // RSS readers take description as HTML: escape the text for HTML, then the HTML for XML.
    out.push(`<description>${x(escapeXml(e.content))}</description>`, georss(e.geo), "</item>");
  }
  out.push("</channel>", "</rss>", "");
  return out.filter((l) => l !== "").join("\n") + "\n";
}
