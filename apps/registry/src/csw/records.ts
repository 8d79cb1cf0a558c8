import type { BBox, LayerInput } from "../storage/types.js";
import { cleanBBox, parseTimeExtent } from "../harvest/types.js";
import { arr, child, text } from "../harvest/xml.js";
import type { XmlNode } from "../harvest/xml.js";

/** ows:BoundingBox to lon/lat: EPSG:4326 URNs are lat/lon, CRS84 and plain "EPSG:4326" lon/lat as most clients write. */
export function owsBBox(b: XmlNode | undefined): BBox | null {
  if (!b) return null;
  const lower = text(b.LowerCorner).split(/\s+/).map(Number);
  const upper = text(b.UpperCorner).split(/\s+/).map(Number);
  const crs = String(b["@crs"] ?? "");
  const latFirst = /^urn:(x-)?ogc:def:crs:EPSG:[\d.]*:4326$/i.test(crs) || /opengis\.net\/def\/crs\/EPSG\/0\/4326$/i.test(crs);
  return latFirst ? cleanBBox([lower[1]!, lower[0]!, upper[1]!, upper[0]!]) : cleanBBox([lower[0]!, lower[1]!, upper[0]!, upper[1]!]);
}

/** A Dublin Core csw:Record (or csw:SummaryRecord / BriefRecord) to a registry record. */
export function recordFromDc(r: XmlNode, fallbackUrl: string, owner = ""): LayerInput | undefined {
  const identifier = text(r.identifier);
  if (!identifier) return undefined;
  const date = text(r.modified) || text(r.date);
  const time = date ? parseTimeExtent(date) : { start: null, end: null };
  const refs = [...arr(r.references), ...arr(r.URI)].map(text).filter((u) => /^https?:\/\//.test(u));
  return {
    identifier,
    name: identifier,
    title: text(r.title) || identifier,
    abstract: text(r.abstract) || text(r.description),
    keywords: arr(r.subject).map(text).filter(Boolean),
    bbox: owsBBox(child(r, "BoundingBox") ?? child(r, "WGS84BoundingBox")),
    crs: [],
    timeStart: time.start,
    timeEnd: time.end,
    type: text(r.type) || "dataset",
    url: refs[0] ?? fallbackUrl,
    owner: text(r.publisher) || owner,
    extra: { format: text(r.format) || undefined, source: text(r.source) || undefined },
  };
}

/** Every csw:Record-like element directly under `parent`. */
export function dcRecordsIn(parent: XmlNode | undefined): XmlNode[] {
  if (!parent) return [];
  return [...arr<XmlNode>(parent.Record), ...arr<XmlNode>(parent.SummaryRecord), ...arr<XmlNode>(parent.BriefRecord)];
}

const cs = (v: unknown): string => text(child(v, "CharacterString") ?? v);

/** An ISO 19139 gmd:MD_Metadata (the common parts) to a registry record. */
export function recordFromIso(m: XmlNode, fallbackUrl: string, owner = ""): LayerInput | undefined {
  const identifier = cs(m.fileIdentifier);
  if (!identifier) return undefined;
  const ident = child(m, "identificationInfo", "MD_DataIdentification") ?? child(m, "identificationInfo", "SV_ServiceIdentification") ?? {};
  const title = cs(child(ident, "citation", "CI_Citation", "title"));
  const keywords = arr<XmlNode>(ident.descriptiveKeywords).flatMap((d) => arr(child(d, "MD_Keywords")?.keyword).map(cs)).filter(Boolean);
  const geo = child(ident, "extent", "EX_Extent", "geographicElement", "EX_GeographicBoundingBox");
  const num = (v: unknown) => Number(text(child(v, "Decimal") ?? v));
  const bbox = geo ? cleanBBox([num(geo.westBoundLongitude), num(geo.southBoundLatitude), num(geo.eastBoundLongitude), num(geo.northBoundLatitude)]) : null;
  const period = child(ident, "extent", "EX_Extent", "temporalElement", "EX_TemporalExtent", "extent", "TimePeriod");
  const time = period ? parseTimeExtent(`${text(period.beginPosition)},${text(period.endPosition)}`) : { start: null, end: null };
  const online = child(m, "distributionInfo", "MD_Distribution", "transferOptions", "MD_DigitalTransferOptions", "onLine", "CI_OnlineResource");
  const url = text(child(online, "linkage", "URL"));
  const protocol = cs(online?.protocol);
  const org = cs(child(m, "contact", "CI_ResponsibleParty", "organisationName"));
  const scope = String(child(m, "hierarchyLevel", "MD_ScopeCode")?.["@codeListValue"] ?? "dataset");
  return {
    identifier,
    name: identifier,
    title: title || identifier,
    abstract: cs(ident.abstract),
    keywords,
    bbox,
    crs: [],
    timeStart: time.start,
    timeEnd: time.end,
    type: protocol || scope,
    url: url || fallbackUrl,
    owner: org || owner,
    extra: {},
  };
}
