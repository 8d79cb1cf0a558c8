import { esc } from "../harvest/xml.js";
import type { Layer } from "../storage/types.js";

export const NS = {
  csw: "http://www.opengis.net/cat/csw/2.0.2",
  dc: "http://purl.org/dc/elements/1.1/",
  dct: "http://purl.org/dc/terms/",
  ows: "http://www.opengis.net/ows",
  ogc: "http://www.opengis.net/ogc",
  gmd: "http://www.isotc211.org/2005/gmd",
  gco: "http://www.isotc211.org/2005/gco",
  gml: "http://www.opengis.net/gml",
  xsi: "http://www.w3.org/2001/XMLSchema-instance",
  xlink: "http://www.w3.org/1999/xlink",
};

export const CSW_NS_ATTRS = `xmlns:csw="${NS.csw}" xmlns:dc="${NS.dc}" xmlns:dct="${NS.dct}" xmlns:ows="${NS.ows}" xmlns:xsi="${NS.xsi}"`;

export type ElementSet = "brief" | "summary" | "full";

const iso = (t: number | null) => (t === null ? "" : new Date(t).toISOString().replace(/\.000Z$/, "Z"));

/** ows:BoundingBox in EPSG:4326 lat/lon order, as pycsw writes it. */
function owsBox(l: Layer): string {
  if (!l.bbox) return "";
  const [minx, miny, maxx, maxy] = l.bbox;
  return `<ows:BoundingBox crs="urn:x-ogc:def:crs:EPSG:6.11:4326" dimensions="2"><ows:LowerCorner>${miny} ${minx}</ows:LowerCorner><ows:UpperCorner>${maxy} ${maxx}</ows:UpperCorner></ows:BoundingBox>`;
}

/** A record as Dublin Core (csw:BriefRecord, csw:SummaryRecord or csw:Record). */
export function dcRecord(l: Layer, set: ElementSet): string {
  const tag = set === "brief" ? "csw:BriefRecord" : set === "summary" ? "csw:SummaryRecord" : "csw:Record";
  const parts = [`<dc:identifier>${esc(l.identifier)}</dc:identifier>`, `<dc:title>${esc(l.title)}</dc:title>`, `<dc:type>${esc(l.type)}</dc:type>`];
  if (set !== "brief") {
    for (const k of l.keywords) parts.push(`<dc:subject>${esc(k)}</dc:subject>`);
    if (l.extra.format) parts.push(`<dc:format>${esc(String(l.extra.format))}</dc:format>`);
    if (l.timeStart !== null) parts.push(`<dct:modified>${iso(l.timeStart)}</dct:modified>`);
    if (l.abstract) parts.push(`<dct:abstract>${esc(l.abstract)}</dct:abstract>`);
  }
  if (set === "full") {
    if (l.owner) parts.push(`<dc:publisher>${esc(l.owner)}</dc:publisher>`);
    parts.push(`<dct:references scheme="${esc(l.type)}">${esc(l.url)}</dct:references>`);
    if (l.timeStart !== null && l.timeEnd !== null && l.timeEnd !== l.timeStart) parts.push(`<dct:temporal>${iso(l.timeStart)}/${iso(l.timeEnd)}</dct:temporal>`);
  }
  parts.push(owsBox(l));
  return `<${tag}>${parts.join("")}</${tag}>`;
}

const cs = (s: string) => `<gco:CharacterString>${esc(s)}</gco:CharacterString>`;

/** A record as ISO 19139 gmd:MD_Metadata (the parts OWSLib's MD_Metadata and MetaSearch read). */
export function isoRecord(l: Layer, set: ElementSet): string {
  const b = l.bbox;
  const ext = b
    ? `<gmd:extent><gmd:EX_Extent><gmd:geographicElement><gmd:EX_GeographicBoundingBox><gmd:westBoundLongitude><gco:Decimal>${b[0]}</gco:Decimal></gmd:westBoundLongitude><gmd:eastBoundLongitude><gco:Decimal>${b[2]}</gco:Decimal></gmd:eastBoundLongitude><gmd:southBoundLatitude><gco:Decimal>${b[1]}</gco:Decimal></gmd:southBoundLatitude><gmd:northBoundLatitude><gco:Decimal>${b[3]}</gco:Decimal></gmd:northBoundLatitude></gmd:EX_GeographicBoundingBox></gmd:geographicElement>${
        l.timeStart !== null && set !== "brief"
          ? `<gmd:temporalElement><gmd:EX_TemporalExtent><gmd:extent><gml:TimePeriod gml:id="t${l.id}"><gml:beginPosition>${iso(l.timeStart)}</gml:beginPosition><gml:endPosition>${iso(l.timeEnd ?? l.timeStart)}</gml:endPosition></gml:TimePeriod></gmd:extent></gmd:EX_TemporalExtent></gmd:temporalElement>`
          : ""
      }</gmd:EX_Extent></gmd:extent>`
    : "";
  const isService = l.type.startsWith("OGC:") || l.type.startsWith("ESRI:") || l.type.startsWith("OSGeo:");
  const keywords = set !== "brief" && l.keywords.length
    ? `<gmd:descriptiveKeywords><gmd:MD_Keywords>${l.keywords.map((k) => `<gmd:keyword>${cs(k)}</gmd:keyword>`).join("")}</gmd:MD_Keywords></gmd:descriptiveKeywords>`
    : "";
  const distribution = set === "full"
    ? `<gmd:distributionInfo><gmd:MD_Distribution><gmd:transferOptions><gmd:MD_DigitalTransferOptions><gmd:onLine><gmd:CI_OnlineResource><gmd:linkage><gmd:URL>${esc(l.url)}</gmd:URL></gmd:linkage><gmd:protocol>${cs(l.type)}</gmd:protocol><gmd:name>${cs(l.name)}</gmd:name></gmd:CI_OnlineResource></gmd:onLine></gmd:MD_DigitalTransferOptions></gmd:transferOptions></gmd:MD_Distribution></gmd:distributionInfo>`
    : "";
  const contact = l.owner && set !== "brief"
    ? `<gmd:contact><gmd:CI_ResponsibleParty><gmd:organisationName>${cs(l.owner)}</gmd:organisationName><gmd:role><gmd:CI_RoleCode codeList="http://www.isotc211.org/2005/resources/Codelist/gmxCodelists.xml#CI_RoleCode" codeListValue="pointOfContact">pointOfContact</gmd:CI_RoleCode></gmd:role></gmd:CI_ResponsibleParty></gmd:contact>`
    : "";
  return `<gmd:MD_Metadata xmlns:gmd="${NS.gmd}" xmlns:gco="${NS.gco}" xmlns:gml="${NS.gml}"><gmd:fileIdentifier>${cs(l.identifier)}</gmd:fileIdentifier><gmd:hierarchyLevel><gmd:MD_ScopeCode codeList="http://www.isotc211.org/2005/resources/Codelist/gmxCodelists.xml#MD_ScopeCode" codeListValue="${isService ? "service" : "dataset"}">${isService ? "service" : "dataset"}</gmd:MD_ScopeCode></gmd:hierarchyLevel>${contact}${
    l.timeStart !== null ? `<gmd:dateStamp><gco:DateTime>${iso(l.updatedAt)}</gco:DateTime></gmd:dateStamp>` : `<gmd:dateStamp><gco:DateTime>${iso(l.updatedAt)}</gco:DateTime></gmd:dateStamp>`
  }<gmd:identificationInfo><gmd:MD_DataIdentification><gmd:citation><gmd:CI_Citation><gmd:title>${cs(l.title)}</gmd:title></gmd:CI_Citation></gmd:citation><gmd:abstract>${cs(l.abstract)}</gmd:abstract>${keywords}${ext}</gmd:MD_DataIdentification></gmd:identificationInfo>${distribution}</gmd:MD_Metadata>`;
}

export function exceptionReport(code: string, message: string, locator?: string): string {
  return `<?xml version="1.0" encoding="UTF-8"?>\n<ows:ExceptionReport xmlns:ows="${NS.ows}" version="1.2.0" language="en"><ows:Exception exceptionCode="${esc(code)}"${locator ? ` locator="${esc(locator)}"` : ""}><ows:ExceptionText>${esc(message)}</ows:ExceptionText></ows:Exception></ows:ExceptionReport>`;
}
