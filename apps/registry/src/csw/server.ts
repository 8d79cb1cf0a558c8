import { GeoWatchError, reasonOf } from "@geowatch/core";
import { basicAuth } from "../auth.js";
import { arr, child, esc, parseXml, text } from "../harvest/xml.js";
import type { XmlNode } from "../harvest/xml.js";
import type { Layer, LayerInput, RegistryStorage } from "../storage/types.js";
import { compileCql, compileFilter } from "./filter.js";
import type { CompiledFilter } from "./filter.js";
import { CSW_NS_ATTRS, NS, dcRecord, exceptionReport, isoRecord } from "./output.js";
import type { ElementSet } from "./output.js";
import { dcRecordsIn, recordFromDc, recordFromIso } from "./records.js";

export interface CswContext {
  storage: RegistryStorage;
  /** The URL clients reach this endpoint at (advertised for GET and POST). */
  url: string;
  title?: string;
  auth: { username: string; password?: string };
  /** Most records one GetRecords returns. */
  maxRecords?: number;
}

export interface CswRequest {
  method: "GET" | "POST";
  query: Record<string, string>;
  body?: string;
  authorization?: string;
}

export interface CswResponse {
  status: number;
  headers: Record<string, string>;
  body: string;
}

const XML = { "content-type": "application/xml; charset=UTF-8" };
const CSW_SCHEMA = NS.csw;
const ISO_SCHEMA = NS.gmd;
/** Records scanned for one filtered request (a filter narrows by bbox in storage first, the rest in memory). */
const SCAN_LIMIT = 200_000;
const MAX_REQUEST_BYTES = 5 * 1024 * 1024;

class CswError extends Error {
  constructor(
    readonly code: string,
    message: string,
    readonly locator?: string,
    readonly status = 400,
  ) {
    super(message);
  }
}

const ok = (body: string): CswResponse => ({ status: 200, headers: XML, body: `<?xml version="1.0" encoding="UTF-8"?>\n${body}` });

function lowerKeys(q: Record<string, string>): Record<string, string> {
  return Object.fromEntries(Object.entries(q).map(([k, v]) => [k.toLowerCase(), v]));
}

/** One CSW 2.0.2 request (KVP GET or XML POST) to its response; every failure is an ows:ExceptionReport. */
export async function handleCsw(req: CswRequest, ctx: CswContext): Promise<CswResponse> {
  try {
    if (req.method === "POST") return await handlePost(req, ctx);
    return await handleGet(lowerKeys(req.query), ctx);
  } catch (err) {
    if (err instanceof CswError) {
      return { status: err.status, headers: { ...XML, ...(err.status === 401 ? { "www-authenticate": 'Basic realm="geowatch-registry CSW"' } : {}) }, body: exceptionReport(err.code, err.message, err.locator) };
    }
    if (err instanceof GeoWatchError && (err.code === "VALIDATE" || err.code === "XML")) {
      return { status: 400, headers: XML, body: exceptionReport(err.code === "XML" ? "NoApplicableCode" : "InvalidParameterValue", err.message.replace(/^\[geowatch\] (\[registry\] )?/, ""), err.path) };
    }
    return { status: 500, headers: XML, body: exceptionReport("NoApplicableCode", reasonOf(err)) };
  }
}

async function handleGet(q: Record<string, string>, ctx: CswContext): Promise<CswResponse> {
  if (q.service && q.service.toUpperCase() !== "CSW") throw new CswError("InvalidParameterValue", `service must be CSW, not ${q.service}`, "service");
  const request = q.request ?? "";
  if (!request) throw new CswError("MissingParameterValue", "request is required", "request");
  if (request !== "GetCapabilities" && q.version && q.version !== "2.0.2") throw new CswError("InvalidParameterValue", `version ${q.version} is not supported (2.0.2)`, "version");
  switch (request) {
    case "GetCapabilities":
      return ok(capabilities(ctx));
    case "DescribeRecord":
      return ok(describeRecord());
    case "GetRecords": {
      let filter: CompiledFilter = { test: () => true };
      if (q.constraint) {
        const lang = (q.constraintlanguage ?? "CQL_TEXT").toUpperCase();
        if (lang === "FILTER") filter = compileFilter(child(parseXml(q.constraint, "CSW constraint", MAX_REQUEST_BYTES), "Filter"));
        else if (lang === "CQL_TEXT") filter = compileCql(q.constraint);
        else throw new CswError("InvalidParameterValue", `constraintlanguage ${q.constraintlanguage} is not FILTER or CQL_TEXT`, "constraintlanguage");
      }
      const sortby = q.sortby ? parseKvpSort(q.sortby) : undefined;
      return ok(await getRecords(ctx, {
        elementSet: elementSet(q.elementsetname),
        resultType: (q.resulttype ?? "hits").toLowerCase(),
        outputSchema: q.outputschema ?? CSW_SCHEMA,
        start: posInt(q.startposition, 1, "startPosition"),
        max: posInt(q.maxrecords, 10, "maxRecords", true),
        filter,
        ...(sortby ? { sort: sortby } : {}),
      }));
    }
    case "GetRecordById": {
      if (!q.id) throw new CswError("MissingParameterValue", "id is required", "id");
      return ok(await getRecordById(ctx, q.id.split(","), elementSet(q.elementsetname ?? "full"), q.outputschema ?? CSW_SCHEMA));
    }
    case "Transaction":
      throw new CswError("OperationNotSupported", "Transaction is POST only", "request", 400);
    default:
      throw new CswError("OperationNotSupported", `request ${request} is not supported`, "request");
  }
}

async function handlePost(req: CswRequest, ctx: CswContext): Promise<CswResponse> {
  const doc = parseXml(req.body ?? "", "CSW request", MAX_REQUEST_BYTES);
  const [name, node] = Object.entries(doc).find(([k]) => k !== "?xml") ?? [];
  if (!name || !node || typeof node !== "object") throw new CswError("NoApplicableCode", "empty request");
  const n = node as XmlNode;
  switch (name) {
    case "GetCapabilities":
      return ok(capabilities(ctx));
    case "DescribeRecord":
      return ok(describeRecord());
    case "GetRecords": {
      const query = child(n, "Query") ?? {};
      const constraint = child(query, "Constraint");
      const filter = constraint?.CqlText ? compileCql(text(constraint.CqlText)) : compileFilter(child(constraint, "Filter"));
      const sortProp = child(query, "SortBy", "SortProperty");
      const sort = sortProp ? { prop: text(sortProp.PropertyName), desc: /^desc/i.test(text(sortProp.SortOrder)) } : undefined;
      return ok(await getRecords(ctx, {
        elementSet: elementSet(text(query.ElementSetName) || "summary"),
        resultType: String(n["@resultType"] ?? "hits").toLowerCase(),
        outputSchema: String(n["@outputSchema"] ?? CSW_SCHEMA),
        start: posInt(n["@startPosition"] as string | undefined, 1, "startPosition"),
        max: posInt(n["@maxRecords"] as string | undefined, 10, "maxRecords", true),
        filter,
        ...(sort ? { sort } : {}),
      }));
    }
    case "GetRecordById":
      return ok(await getRecordById(ctx, arr(n.Id).map(text), elementSet(text(n.ElementSetName) || "full"), String(n["@outputSchema"] ?? CSW_SCHEMA)));
    case "Transaction":
      authorize(req.authorization, ctx.auth);
      return ok(await transaction(ctx, n));
    default:
      throw new CswError("OperationNotSupported", `request ${name} is not supported`, "request");
  }
}

/** HTTP Basic credentials, compared in constant time (see auth.ts). */
function authorize(header: string | undefined, auth: CswContext["auth"]): void {
  const r = basicAuth(header, auth);
  if (r === "disabled") throw new CswError("NoApplicableCode", "Transactions are disabled: no CSW password is configured", "Transaction", 403);
  if (r === "denied") throw new CswError("NoApplicableCode", "Transaction needs valid credentials", "Transaction", 401);
}

function elementSet(v: string | undefined): ElementSet {
  const s = (v ?? "summary").toLowerCase();
  if (s !== "brief" && s !== "summary" && s !== "full") throw new CswError("InvalidParameterValue", `elementSetName ${v} is not brief, summary or full`, "ElementSetName");
  return s;
}

function posInt(v: string | undefined, def: number, name: string, zero = false): number {
  if (v === undefined || v === "") return def;
  const n = Number(v);
  if (!Number.isInteger(n) || n < (zero ? 0 : 1)) throw new CswError("InvalidParameterValue", `${name} must be an integer >= ${zero ? 0 : 1}`, name);
  return n;
}

function parseKvpSort(s: string): { prop: string; desc: boolean } {
  const i = s.lastIndexOf(":");
  const dir = i > 0 ? s.slice(i + 1).toUpperCase() : "A";
  if (dir === "A" || dir === "D") return { prop: s.slice(0, i), desc: dir === "D" };
  return { prop: s, desc: false };
}

function sortValue(l: Layer, prop: string): string | number {
  const key = prop.split(":").pop()!.toLowerCase();
  switch (key) {
    case "title": return l.title.toLowerCase();
    case "identifier": return l.identifier;
    case "modified": case "date": case "tempextent_begin": return l.timeStart ?? -Infinity;
    case "type": return l.type;
    case "abstract": return l.abstract.toLowerCase();
    default: throw new CswError("InvalidParameterValue", `cannot sort by ${prop}`, "SortBy");
  }
}

async function matching(ctx: CswContext, filter: CompiledFilter): Promise<Layer[]> {
  const r = await ctx.storage.search({ ...(filter.bbox ? { bbox: filter.bbox } : {}), limit: SCAN_LIMIT, offset: 0, sort: "title", sortDir: "asc" });
  return r.docs.filter((l) => filter.test(l));
}

function render(l: Layer, set: ElementSet, schema: string): string {
  if (schema === ISO_SCHEMA) return isoRecord(l, set);
  if (schema !== CSW_SCHEMA) throw new CswError("InvalidParameterValue", `outputSchema ${schema} is not supported (${CSW_SCHEMA} or ${ISO_SCHEMA})`, "outputSchema");
  return dcRecord(l, set);
}

async function getRecords(
  ctx: CswContext,
  p: { elementSet: ElementSet; resultType: string; outputSchema: string; start: number; max: number; filter: CompiledFilter; sort?: { prop: string; desc: boolean } },
): Promise<string> {
  if (p.resultType !== "hits" && p.resultType !== "results" && p.resultType !== "validate") throw new CswError("InvalidParameterValue", `resultType ${p.resultType} is not hits or results`, "resultType");
  if (p.outputSchema !== CSW_SCHEMA && p.outputSchema !== ISO_SCHEMA) render({} as Layer, p.elementSet, p.outputSchema);
  const all = await matching(ctx, p.filter);
  if (p.sort) {
    const s = p.sort;
    all.sort((a, b) => {
      const x = sortValue(a, s.prop);
      const y = sortValue(b, s.prop);
      return (x < y ? -1 : x > y ? 1 : a.id - b.id) * (s.desc ? -1 : 1);
    });
  }
  const max = Math.min(p.max, ctx.maxRecords ?? 100);
  const page = p.resultType === "results" ? all.slice(p.start - 1, p.start - 1 + max) : [];
  const next = p.resultType === "results" && p.start - 1 + page.length < all.length ? p.start + page.length : 0;
  const records = page.map((l) => render(l, p.elementSet, p.outputSchema)).join("");
  return `<csw:GetRecordsResponse ${CSW_NS_ATTRS} xmlns:gmd="${NS.gmd}" version="2.0.2"><csw:SearchStatus timestamp="${new Date().toISOString()}"/><csw:SearchResults numberOfRecordsMatched="${all.length}" numberOfRecordsReturned="${page.length}" elementSet="${p.elementSet}" nextRecord="${next}" recordSchema="${esc(p.outputSchema)}">${records}</csw:SearchResults></csw:GetRecordsResponse>`;
}

async function getRecordById(ctx: CswContext, ids: string[], set: ElementSet, schema: string): Promise<string> {
  const found: string[] = [];
  for (const id of ids.map((x) => x.trim()).filter(Boolean)) {
    const l = await ctx.storage.getLayerByIdentifier(id);
    if (l) found.push(render(l, set, schema));
  }
  return `<csw:GetRecordByIdResponse ${CSW_NS_ATTRS} xmlns:gmd="${NS.gmd}">${found.join("")}</csw:GetRecordByIdResponse>`;
}

function recordsOf(node: XmlNode | undefined, url: string): LayerInput[] {
  if (!node) return [];
  const dc = dcRecordsIn(node).map((r) => recordFromDc(r, url));
  const iso = arr<XmlNode>(node.MD_Metadata).map((m) => recordFromIso(m, url));
  const out = [...dc, ...iso];
  if (out.some((r) => r === undefined)) throw new CswError("InvalidParameterValue", "a record has no identifier (dc:identifier or gmd:fileIdentifier)", "Transaction");
  return out as LayerInput[];
}

async function transaction(ctx: CswContext, n: XmlNode): Promise<string> {
  let inserted = 0;
  let updated = 0;
  let deleted = 0;
  const insertedIds: string[] = [];
  for (const ins of arr<XmlNode>(n.Insert)) {
    const recs = recordsOf(ins, ctx.url);
    if (!recs.length) throw new CswError("InvalidParameterValue", "Insert holds no csw:Record or gmd:MD_Metadata", "Insert");
    inserted += await ctx.storage.upsertRecords(recs);
    insertedIds.push(...recs.map((r) => r.identifier));
  }
  for (const up of arr<XmlNode>(n.Update)) {
    const recs = recordsOf(up, ctx.url);
    if (recs.length) {
      for (const r of recs) if (!(await ctx.storage.getLayerByIdentifier(r.identifier))) throw new CswError("InvalidParameterValue", `no record ${r.identifier} to update`, "Update");
      updated += await ctx.storage.upsertRecords(recs);
      continue;
    }
    const props = arr<XmlNode>(up.RecordProperty);
    if (!props.length) throw new CswError("InvalidParameterValue", "Update holds neither a record nor RecordProperty elements", "Update");
    const constraint = child(up, "Constraint");
    if (!constraint) throw new CswError("MissingParameterValue", "a RecordProperty Update needs a Constraint", "Update");
    const filter = constraint.CqlText ? compileCql(text(constraint.CqlText)) : compileFilter(child(constraint, "Filter"));
    const targets = await matching(ctx, filter);
    const changed = targets.map((l) => {
      const rec: LayerInput = { identifier: l.identifier, name: l.name, title: l.title, abstract: l.abstract, keywords: l.keywords, bbox: l.bbox, crs: l.crs, timeStart: l.timeStart, timeEnd: l.timeEnd, type: l.type, url: l.url, owner: l.owner, extra: l.extra };
      for (const p of props) {
        const key = text(p.Name).split(":").pop()!.toLowerCase();
        const value = text(p.Value);
        if (key === "title") rec.title = value;
        else if (key === "abstract" || key === "description") rec.abstract = value;
        else if (key === "subject" || key === "keywords") rec.keywords = value.split(",").map((s) => s.trim()).filter(Boolean);
        else if (key === "type") rec.type = value;
        else if (key === "publisher" || key === "creator") rec.owner = value;
        else throw new CswError("InvalidParameterValue", `cannot update ${text(p.Name)}`, "RecordProperty");
      }
      return rec;
    });
    if (changed.some((r) => (targets.find((t) => t.identifier === r.identifier)?.serviceId ?? null) !== null)) {
      throw new CswError("InvalidParameterValue", "harvested layers are updated by harvesting their service, not by Transaction", "Update");
    }
    updated += changed.length ? await ctx.storage.upsertRecords(changed) : 0;
  }
  for (const del of arr<XmlNode>(n.Delete)) {
    const constraint = child(del, "Constraint");
    if (!constraint) throw new CswError("MissingParameterValue", "Delete needs a Constraint", "Delete");
    const filter = constraint.CqlText ? compileCql(text(constraint.CqlText)) : compileFilter(child(constraint, "Filter"));
    const targets = (await matching(ctx, filter)).filter((l) => l.serviceId === null);
    deleted += await ctx.storage.deleteRecords(targets.map((l) => l.identifier));
  }
  const results = insertedIds.length
    ? `<csw:InsertResult>${insertedIds.map((id) => `<csw:BriefRecord><dc:identifier>${esc(id)}</dc:identifier></csw:BriefRecord>`).join("")}</csw:InsertResult>`
    : "";
  return `<csw:TransactionResponse ${CSW_NS_ATTRS} version="2.0.2"><csw:TransactionSummary><csw:totalInserted>${inserted}</csw:totalInserted><csw:totalUpdated>${updated}</csw:totalUpdated><csw:totalDeleted>${deleted}</csw:totalDeleted></csw:TransactionSummary>${results}</csw:TransactionResponse>`;
}

function describeRecord(): string {
  return `<csw:DescribeRecordResponse ${CSW_NS_ATTRS}><csw:SchemaComponent schemaLanguage="http://www.w3.org/XML/Schema" targetNamespace="${NS.csw}"><xs:schema xmlns:xs="http://www.w3.org/2001/XMLSchema" targetNamespace="${NS.csw}" elementFormDefault="qualified"><xs:element name="Record" type="csw:RecordType"/><xs:complexType name="RecordType"><xs:sequence><xs:any namespace="${NS.dc} ${NS.dct}" minOccurs="0" maxOccurs="unbounded"/><xs:element ref="ows:BoundingBox" minOccurs="0" maxOccurs="unbounded"/></xs:sequence></xs:complexType></xs:schema></csw:SchemaComponent></csw:DescribeRecordResponse>`;
}

function capabilities(ctx: CswContext): string {
  const url = esc(ctx.url);
  const op = (name: string, params: string, post = true) =>
    `<ows:Operation name="${name}"><ows:DCP><ows:HTTP><ows:Get xlink:href="${url}"/>${post ? `<ows:Post xlink:href="${url}"/>` : ""}</ows:HTTP></ows:DCP>${params}</ows:Operation>`;
  const p = (name: string, values: string[]) => `<ows:Parameter name="${name}">${values.map((v) => `<ows:Value>${esc(v)}</ows:Value>`).join("")}</ows:Parameter>`;
  const schemas = p("outputSchema", [CSW_SCHEMA, ISO_SCHEMA]);
  const types = p("typeNames", ["csw:Record", "gmd:MD_Metadata"]);
  const comparisons = ["EqualTo", "Like", "LessThan", "GreaterThan", "LessThanEqualTo", "GreaterThanEqualTo", "NotEqualTo", "Between", "NullCheck"];
  return `<csw:Capabilities ${CSW_NS_ATTRS} xmlns:ogc="${NS.ogc}" xmlns:xlink="${NS.xlink}" xmlns:gml="${NS.gml}" version="2.0.2">
<ows:ServiceIdentification><ows:Title>${esc(ctx.title ?? "GeoWatch registry")}</ows:Title><ows:Abstract>Layers and services harvested and checked by the GeoWatch registry</ows:Abstract><ows:ServiceType>CSW</ows:ServiceType><ows:ServiceTypeVersion>2.0.2</ows:ServiceTypeVersion><ows:Fees>none</ows:Fees><ows:AccessConstraints>none</ows:AccessConstraints></ows:ServiceIdentification>
<ows:ServiceProvider><ows:ProviderName>GeoWatch</ows:ProviderName><ows:ServiceContact><ows:IndividualName>registry</ows:IndividualName></ows:ServiceContact></ows:ServiceProvider>
<ows:OperationsMetadata>${op("GetCapabilities", p("sections", ["ServiceIdentification", "ServiceProvider", "OperationsMetadata", "Filter_Capabilities"]))}${op("DescribeRecord", p("typeName", ["csw:Record"]) + p("outputFormat", ["application/xml"]) + p("schemaLanguage", ["http://www.w3.org/XML/Schema"]))}${op(
    "GetRecords",
    p("resultType", ["hits", "results"]) + p("outputFormat", ["application/xml"]) + schemas + types + p("ElementSetName", ["brief", "summary", "full"]) + p("CONSTRAINTLANGUAGE", ["FILTER", "CQL_TEXT"]) +
      `<ows:Constraint name="SupportedDublinCoreQueryables">${["csw:AnyText", "dc:title", "dct:abstract", "dc:subject", "dc:identifier", "dc:type", "dc:format", "dct:modified", "dc:publisher", "ows:BoundingBox"].map((v) => `<ows:Value>${v}</ows:Value>`).join("")}</ows:Constraint>`,
  )}${op("GetRecordById", schemas + p("ElementSetName", ["brief", "summary", "full"]))}${op("Transaction", "", true)}
<ows:Parameter name="service"><ows:Value>CSW</ows:Value></ows:Parameter><ows:Parameter name="version"><ows:Value>2.0.2</ows:Value></ows:Parameter><ows:Constraint name="PostEncoding"><ows:Value>XML</ows:Value></ows:Constraint></ows:OperationsMetadata>
<ogc:Filter_Capabilities><ogc:Spatial_Capabilities><ogc:GeometryOperands><ogc:GeometryOperand>gml:Envelope</ogc:GeometryOperand></ogc:GeometryOperands><ogc:SpatialOperators><ogc:SpatialOperator name="BBOX"/></ogc:SpatialOperators></ogc:Spatial_Capabilities><ogc:Scalar_Capabilities><ogc:LogicalOperators/><ogc:ComparisonOperators>${comparisons.map((c) => `<ogc:ComparisonOperator>${c}</ogc:ComparisonOperator>`).join("")}</ogc:ComparisonOperators></ogc:Scalar_Capabilities><ogc:Id_Capabilities><ogc:EID/><ogc:FID/></ogc:Id_Capabilities></ogc:Filter_Capabilities>
</csw:Capabilities>`;
}
