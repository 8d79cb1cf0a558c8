/**
 * WFS-T writer (1.1.0 and 2.0.0): edits become one Transaction of Insert, Update and Delete actions, each
 * with a handle, and the TransactionResponse becomes one result per edit (new feature ids matched through
 * the handles, since servers need not answer in order: QGIS Server lists them reversed).
 *
 * Idempotency with `idProperty`: one GetFeature per batch and type finds the server's feature ids for the
 * batch's stable ids; the edits of one id are folded into the one action that takes the server from what
 * it holds to the last state (a create of an existing id becomes an Update, a delete a Delete by FeatureId,
 * an update of a missing id nothing), so a replay after a crash converges instead of inserting twice.
 */
import { GeoWatchError } from "@geowatch/core";
import { DEFAULT_SRS, GML_NS, NCNAME, WFS_NS, type AxisOrder, type Feature, type GmlVersion } from "./gml-common.js";
import { encodeFeature, encodeGeometry } from "./gml-encode.js";
import { BACKEND, excerpt, type WfsHttp } from "./http.js";
import type { WfsProducerOptions } from "./options.js";
import type { Edit, EditResult, EditWriter } from "./producer.js";
import { attr, childByLocalName, escapeAttr, escapeXml, findElements, localName, parseExceptionReport, parseXml, rootElement, textOf } from "./xml.js";

const OGC_NS = "http://www.opengis.net/ogc";
const FES_NS = "http://www.opengis.net/fes/2.0";
const XSI = "http://www.w3.org/2001/XMLSchema-instance";

/**
 * The document with every non-ASCII character in text and attribute values written as a character
 * reference: the same XML, and servers that count Content-Length in characters (qgis_mapserver hangs
 * waiting for the rest of a body with multi-byte UTF-8) read it whole.
 */
export function asciiXml(xml: string): string {
  if (!/[^\x00-\x7f]/.test(xml)) return xml;
  const ref = (t: string) => t.replace(/[^\x00-\x7f]/gu, (c) => `&#x${c.codePointAt(0)!.toString(16)};`);
  return xml.replace(/<[^>]*>|[^<]+/g, (part) => (part.startsWith("<") ? part.replace(/"[^"]*"|'[^']*'/g, ref) : ref(part)));
}

/** What a Transaction needs to know of a feature type. */
export interface TypeInfo {
  /** Qualified name written (`qgs:writer`). */
  qname: string;
  prefix: string;
  local: string;
  namespace: string;
  geometryName: string;
  /** Properties of type xsd:boolean: written as 1/0 (both valid xsd:boolean; QGIS Server reads "true" as false). */
  booleans: ReadonlySet<string>;
}

type Wfs = "1.1.0" | "2.0.0";
const gmlOf = (v: Wfs): GmlVersion => (v === "2.0.0" ? "3.2" : "3.1.1");

interface Action {
  kind: "insert" | "update" | "delete";
  type: TypeInfo;
  handle: string;
  /** insert: the feature; update: the properties to set (null clears) and the geometry when it changes. */
  feature?: Feature;
  properties?: Record<string, unknown>;
  geometry?: Feature["geometry"];
  /** update/delete: the server's feature ids. */
  fids?: string[];
  /** The edits (indexes into the batch) this action stands for. */
  edits: number[];
}

function failure(message: string, retryable: boolean, cause?: unknown): EditResult {
  return { ok: false, error: new GeoWatchError("SEND", message, { backend: BACKEND, retryable, cause }), retryable };
}

function booleansAsDigits(props: Record<string, unknown>, type: TypeInfo): Record<string, unknown> {
  if (type.booleans.size === 0) return props;
  const out: Record<string, unknown> = { ...props };
  for (const k of type.booleans) if (typeof out[k] === "boolean") out[k] = out[k] ? 1 : 0;
  return out;
}

/** The XML of one action. */
function actionXml(a: Action, v: Wfs, o: { srsName: string; axisOrder?: AxisOrder | undefined; nulls: "nil" | "omit" }): string {
  const gml = gmlOf(v);
  const geo = { version: gml, srsName: o.srsName, ...(o.axisOrder ? { axisOrder: o.axisOrder } : {}) };
  const h = ` handle="${escapeAttr(a.handle)}"`;
  const filter = (fids: string[]) =>
    v === "2.0.0"
      ? `<fes:Filter>${fids.map((f) => `<fes:ResourceId rid="${escapeAttr(f)}"/>`).join("")}</fes:Filter>`
      : `<ogc:Filter>${fids.map((f) => `<ogc:FeatureId fid="${escapeAttr(f)}"/>`).join("")}</ogc:Filter>`;
  if (a.kind === "insert") {
    // The server assigns the id: a GeoJSON id would become a gml:id the server may refuse or ignore.
    const { id: _id, ...feature } = a.feature!;
    if (feature.properties) feature.properties = booleansAsDigits(feature.properties, a.type);
    const body = encodeFeature(feature as Feature, { ...geo, featureType: a.type.qname, namespacePrefix: a.type.prefix, namespaceUri: a.type.namespace, geometryName: a.type.geometryName, nulls: o.nulls, declareNamespaces: false });
    return `<wfs:Insert${h}>${body}</wfs:Insert>`;
  }
  const tn = ` typeName="${escapeAttr(a.type.qname)}"`;
  if (a.kind === "delete") return `<wfs:Delete${tn}${h}>${filter(a.fids!)}</wfs:Delete>`;
  const name = v === "2.0.0" ? "wfs:ValueReference" : "wfs:Name";
  let props = "";
  if (a.geometry !== undefined) {
    const value = a.geometry === null ? "" : `<wfs:Value>${encodeGeometry(a.geometry, geo)}</wfs:Value>`;
    props += `<wfs:Property><${name}>${a.type.geometryName}</${name}>${value}</wfs:Property>`;
  }
  for (const [k, val] of Object.entries(booleansAsDigits(a.properties ?? {}, a.type))) {
    if (!NCNAME.test(k) || k.includes(":")) throw new GeoWatchError("ENCODE", `property name ${JSON.stringify(k)} is not an XML element name`, { backend: BACKEND });
    // A Property without a Value sets the property to null (WFS 1.1.0 and 2.0.0 alike).
    const text = val === null || val === undefined ? undefined : typeof val === "object" ? JSON.stringify(val) : String(val);
    props += `<wfs:Property><${name}>${k}</${name}>${text === undefined ? "" : `<wfs:Value>${escapeXml(text)}</wfs:Value>`}</wfs:Property>`;
  }
  return `<wfs:Update${tn}${h}>${props}${filter(a.fids!)}</wfs:Update>`;
}

function transactionXml(actions: Action[], v: Wfs, o: Parameters<typeof actionXml>[2]): string {
  const ns = new Map<string, string>();
  for (const a of actions) if (a.type.prefix) ns.set(a.type.prefix, a.type.namespace);
  const filterNs = v === "2.0.0" ? `xmlns:fes="${FES_NS}"` : `xmlns:ogc="${OGC_NS}"`;
  let s = `<?xml version="1.0" encoding="UTF-8"?>\n<wfs:Transaction service="WFS" version="${v}" xmlns:wfs="${WFS_NS[gmlOf(v)]}" xmlns:gml="${GML_NS[gmlOf(v)]}" ${filterNs} xmlns:xsi="${XSI}"`;
  for (const [p, uri] of ns) s += ` xmlns:${p}="${escapeAttr(uri)}"`;
  s += ">";
  for (const a of actions) s += actionXml(a, v, o);
  return asciiXml(`${s}</wfs:Transaction>`);
}

/** What the server said about each action: new ids by handle, failures by handle, or one exception for all. */
interface TxOutcome {
  inserted: Map<string, string[]>;
  /** Insert ids without a handle, in document order. */
  unhandled: string[];
  failed: Map<string, string>;
  exception?: { text: string; locator?: string | undefined };
}

export function parseTransactionResponse(text: string): TxOutcome {
  const doc = parseXml(text, { what: "TransactionResponse" });
  const out: TxOutcome = { inserted: new Map(), unhandled: [], failed: new Map() };
  const ex = parseExceptionReport(doc);
  if (ex) {
    out.exception = { text: ex.code ? `${ex.code}: ${ex.text}` : ex.text, locator: ex.locator };
    return out;
  }
  const root = rootElement(doc);
  if (!root || localName(root[0]) !== "TransactionResponse") {
    throw new GeoWatchError("SEND", `expected a TransactionResponse, got ${root ? `<${root[0]}>` : "no document"}: ${excerpt(text)}`, { backend: BACKEND, retryable: true });
  }
  for (const f of findElements(root[1], "Feature")) {
    const ids = [...findElements(f, "FeatureId").map((x) => attr(x, "fid")), ...findElements(f, "ResourceId").map((x) => attr(x, "rid"))].filter((x): x is string => !!x);
    const handle = attr(f, "handle");
    if (handle === undefined) out.unhandled.push(...ids);
    else out.inserted.set(handle, [...(out.inserted.get(handle) ?? []), ...ids]);
  }
  // Per-action failures (QGIS Server reports them here and keeps the other actions).
  for (const a of findElements(root[1], "Action")) {
    const locator = attr(a, "locator");
    const msg = findElements(a, "Message").map((m) => textOf(m).trim()).filter(Boolean).join("; ");
    if (locator !== undefined) out.failed.set(locator, msg || "the server reported the action as failed");
  }
  return out;
}

/** Reads the feature type's namespace and geometry property from DescribeFeatureType (once per type). */
async function describe(http: WfsHttp, v: Wfs, typeName: string, o: WfsProducerOptions): Promise<TypeInfo> {
  const i = typeName.indexOf(":");
  const local = i < 0 ? typeName : typeName.slice(i + 1);
  let prefix = i < 0 ? "" : typeName.slice(0, i);
  if (!NCNAME.test(local) || (prefix && !NCNAME.test(prefix))) {
    throw new GeoWatchError("VALIDATE", `feature type ${JSON.stringify(typeName)} is not an XML name`, { backend: BACKEND });
  }
  let namespace = o.featureNamespace;
  let geometryName = o.geometryName;
  const booleans = new Set<string>();
  if (namespace === undefined || geometryName === undefined) {
    const res = await http.request({ params: { SERVICE: "WFS", VERSION: v, REQUEST: "DescribeFeatureType", [v === "2.0.0" ? "TYPENAMES" : "TYPENAME"]: typeName } });
    if (res.status >= 500) throw new GeoWatchError("CONNECT", `DescribeFeatureType ${typeName}: HTTP ${res.status}: ${excerpt(res.text)}`, { backend: BACKEND, retryable: true });
    const doc = parseXml(res.text, { what: "DescribeFeatureType response" });
    const ex = parseExceptionReport(doc);
    if (ex || res.status >= 400) {
      throw new GeoWatchError("NOT_FOUND", `feature type "${typeName}" cannot be described: ${ex?.text ?? `HTTP ${res.status}: ${excerpt(res.text)}`}`, { backend: BACKEND });
    }
    const root = rootElement(doc);
    const schema = root?.[1];
    // QGIS Server answers an unknown type with an empty schema rather than an exception.
    if (!findElements(schema, "element").some((el) => attr(el, "name") === local)) {
      throw new GeoWatchError("NOT_FOUND", `feature type "${typeName}" is not served (DescribeFeatureType declares no element "${local}")`, { backend: BACKEND });
    }
    namespace ??= attr(schema, "targetNamespace");
    if (namespace === undefined) throw new GeoWatchError("NOT_FOUND", `DescribeFeatureType of "${typeName}" names no targetNamespace; set feature_namespace`, { backend: BACKEND });
    if (geometryName === undefined) {
      for (const el of findElements(schema, "element")) {
        const t = attr(el, "type") ?? "";
        if (/^gml:/.test(t) && /(Geometry|Point|Curve|Surface|LineString|Polygon|Multi\w*)PropertyType$/.test(localName(t))) {
          geometryName = attr(el, "name");
          break;
        }
      }
    }
    geometryName ??= "geometry";
    for (const el of findElements(schema, "element")) {
      const name = attr(el, "name");
      if (name !== undefined && localName(attr(el, "type") ?? "") === "boolean") booleans.add(name);
    }
    if (!prefix) {
      // The prefix the server's schema binds to its namespace, else our own.
      const decl = Object.entries(schema && typeof schema === "object" && !Array.isArray(schema) ? schema : {}).find(([k, val]) => k.startsWith("@_xmlns:") && val === namespace);
      prefix = decl ? decl[0].slice(8) : "feature";
    }
  }
  prefix ||= "feature";
  return { qname: `${prefix}:${local}`, prefix, local, namespace, geometryName, booleans };
}

/**
 * Most conditions or FeatureIds in one filter. QGIS Server 3.22 silently matches nothing when a filter has more
 * than about 85 (80 worked, 90 and 100 did not): a GetFeature answers an empty collection and a Delete reports
 * `totalDeleted` 0, so a create would insert again and a delete would be lost.
 */
const LOOKUP_CHUNK = 50;

/** Finds the server's feature ids for stable ids: GetFeatures with an Or filter on the id property, LOOKUP_CHUNK ids each. */
async function lookup(http: WfsHttp, v: Wfs, type: TypeInfo, idProperty: string, ids: string[]): Promise<Map<string, string[]>> {
  const found = new Map<string, string[]>();
  for (let i = 0; i < ids.length; i += LOOKUP_CHUNK) await lookupChunk(http, v, type, idProperty, ids.slice(i, i + LOOKUP_CHUNK), found);
  return found;
}

async function lookupChunk(http: WfsHttp, v: Wfs, type: TypeInfo, idProperty: string, ids: string[], found: Map<string, string[]>): Promise<void> {
  if (ids.length === 0) return;
  const fes = v === "2.0.0";
  const [f, pn, lit] = fes ? ["fes", "fes:ValueReference", "fes:Literal"] : ["ogc", "ogc:PropertyName", "ogc:Literal"];
  const eq = ids.map((id) => `<${f}:PropertyIsEqualTo matchCase="true"><${pn}>${idProperty}</${pn}><${lit}>${escapeXml(id)}</${lit}></${f}:PropertyIsEqualTo>`);
  const cond = eq.length === 1 ? eq[0] : `<${f}:Or>${eq.join("")}</${f}:Or>`;
  const gml = gmlOf(v);
  const body =
    `<?xml version="1.0" encoding="UTF-8"?>\n<wfs:GetFeature service="WFS" version="${v}" xmlns:wfs="${WFS_NS[gml]}" xmlns:${f}="${fes ? FES_NS : OGC_NS}" xmlns:${type.prefix}="${escapeAttr(type.namespace)}"` +
    `${fes ? "" : ` maxFeatures="${ids.length * 4 + 100}"`}>` +
    `<wfs:Query ${fes ? "typeNames" : "typeName"}="${escapeAttr(type.qname)}"><wfs:PropertyName>${type.prefix}:${idProperty}</wfs:PropertyName><${f}:Filter>${cond}</${f}:Filter></wfs:Query></wfs:GetFeature>`;
  const res = await http.request({ body: asciiXml(body), contentType: "text/xml; charset=utf-8" });
  if (res.status >= 500) throw new GeoWatchError("CONNECT", `GetFeature (id lookup) on ${type.qname}: HTTP ${res.status}: ${excerpt(res.text)}`, { backend: BACKEND, retryable: true });
  const doc = parseXml(res.text, { what: "GetFeature response" });
  const ex = parseExceptionReport(doc);
  if (ex || res.status >= 400) {
    throw new GeoWatchError("SEND", `GetFeature (id lookup) on ${type.qname} failed: ${ex?.text ?? `HTTP ${res.status}: ${excerpt(res.text)}`}`, { backend: BACKEND, retryable: true });
  }
  for (const el of findElements(doc, type.local)) {
    const fid = attr(el, "gml:id") ?? attr(el, "fid") ?? attr(el, "id");
    const uid = childByLocalName(el, idProperty);
    if (fid === undefined || uid === undefined) continue;
    const key = textOf(uid);
    found.set(key, [...(found.get(key) ?? []), fid]);
  }
}

/** The stable id of an edit: the id property, else the Feature's id. */
function stableIdOf(f: Feature, idProperty: string): string | undefined {
  const p = f.properties?.[idProperty];
  if (p !== undefined && p !== null && p !== "") return String(p);
  return f.id === undefined || f.id === null ? undefined : String(f.id);
}

/** A server feature id from a GeoJSON id: kept when it has a dot (`points.12`), else `<type>.<id>`. */
function serverFid(id: string | number, type: TypeInfo): string {
  const s = String(id);
  return s.includes(".") ? s : `${type.local}.${s}`;
}

interface Folded {
  exists: boolean;
  full?: Feature;
  patch?: { properties: Record<string, unknown>; geometry?: Feature["geometry"] };
  edits: number[];
}

/** The WFS-T writer. */
export function transactionWriter(http: WfsHttp, o: WfsProducerOptions): EditWriter {
  const v: Wfs = o.version ?? "1.1.0";
  const enc = { srsName: o.srsName ?? DEFAULT_SRS[gmlOf(v)], axisOrder: o.axisOrder, nulls: o.nulls ?? "nil" };
  const types = new Map<string, Promise<TypeInfo>>();
  const typeInfo = (name: string) => {
    let p = types.get(name);
    if (!p) {
      p = describe(http, v, name, o);
      // A failed describe is asked again next time (the server may have been down).
      p.catch(() => types.delete(name));
      types.set(name, p);
    }
    return p;
  };

  /** Sends one Transaction; returns a result per edit of `edits` (by batch index). */
  async function send(actions: Action[], results: EditResult[]): Promise<void> {
    if (actions.length === 0) return;
    let body: string;
    try {
      body = transactionXml(actions, v, enc);
    } catch {
      // One action cannot be written: find it by writing each alone.
      for (const a of actions) {
        try {
          transactionXml([a], v, enc);
        } catch (err) {
          for (const i of a.edits) results[i] = { ok: false, error: err as Error, retryable: false };
          continue;
        }
        await send([a], results);
      }
      return;
    }
    const res = await http.request({ body, contentType: "text/xml; charset=utf-8" });
    if (res.status === 502 || res.status === 503 || res.status === 504) {
      throw new GeoWatchError("CONNECT", `Transaction: HTTP ${res.status}: ${excerpt(res.text)}`, { backend: BACKEND, retryable: true });
    }
    if (res.status === 401 || res.status === 403) {
      throw new GeoWatchError("AUTH", `Transaction refused: HTTP ${res.status} (check the credentials): ${excerpt(res.text)}`, { backend: BACKEND });
    }
    let out: TxOutcome;
    try {
      out = parseTransactionResponse(res.text);
    } catch (err) {
      const msg = `Transaction: HTTP ${res.status}, unreadable answer: ${err instanceof Error ? err.message : String(err)}`;
      for (const a of actions) for (const i of a.edits) results[i] = failure(msg, true, err);
      return;
    }
    if (out.exception) {
      const located = actions.find((a) => a.handle === out.exception!.locator);
      if (actions.length === 1 || located) {
        // The server named the action (or there is only one): it fails; the others were rolled back and go again.
        const bad = located ?? actions[0]!;
        for (const i of bad.edits) results[i] = failure(`the server rejected the ${bad.kind}: ${out.exception.text}`, false);
        await send(actions.filter((a) => a !== bad), results);
      } else {
        // The whole Transaction was refused without saying which action: send each on its own to find it.
        for (const a of actions) await send([a], results);
      }
      return;
    }
    if (res.status >= 400) {
      for (const a of actions) for (const i of a.edits) results[i] = failure(`Transaction: HTTP ${res.status}: ${excerpt(res.text)}`, res.status >= 500);
      return;
    }
    let next = 0;
    for (const a of actions) {
      const failed = out.failed.get(a.handle);
      if (failed !== undefined) {
        for (const i of a.edits) results[i] = failure(`the server rejected the ${a.kind}: ${failed}`, false);
        continue;
      }
      let id: string | undefined;
      if (a.kind === "insert") {
        // Matched by handle; a server that drops the handles lists the ids in action order.
        id = out.inserted.get(a.handle)?.[0] ?? (out.inserted.size === 0 ? out.unhandled[next++] : undefined);
      } else id = a.fids?.[0];
      for (const i of a.edits) results[i] = id !== undefined ? { ok: true, id } : { ok: true };
    }
  }

  return {
    async apply(edits: Edit[]): Promise<EditResult[]> {
      const results: EditResult[] = new Array(edits.length);
      const infos = new Map<string, TypeInfo>();
      for (const name of new Set(edits.map((e) => e.typeName))) {
        try {
          infos.set(name, await typeInfo(name));
        } catch (err) {
          if (err instanceof GeoWatchError && err.code === "CONNECT") throw err;
          edits.forEach((e, i) => {
            if (e.typeName === name) results[i] = { ok: false, error: err as Error, retryable: err instanceof GeoWatchError && err.retryable };
          });
        }
      }
      const actions: Action[] = [];
      let n = 0;
      const handle = () => `gw${n++}`;
      const idProperty = o.idProperty;
      if (idProperty === undefined) {
        edits.forEach((e, i) => {
          const type = infos.get(e.typeName);
          if (!type) return;
          const f = e.feature;
          if (e.action === "create") {
            actions.push({ kind: "insert", type, handle: handle(), feature: f, edits: [i] });
            return;
          }
          if (f.id === undefined || f.id === null || f.id === "") {
            results[i] = failure(`an ${e.action} needs the Feature's id (the server's feature id) or id_property`, false);
            return;
          }
          const fids = [serverFid(f.id, type)];
          if (e.action === "delete") actions.push({ kind: "delete", type, handle: handle(), fids, edits: [i] });
          else actions.push({ kind: "update", type, handle: handle(), fids, properties: { ...(f.properties ?? {}) }, ...(f.geometry ? { geometry: f.geometry } : {}), edits: [i] });
        });
        await send(actions, results);
        return results;
      }
      // Idempotent path: fold the edits of each stable id, then act on what the server holds.
      const byType = new Map<string, Map<string, Folded>>();
      const order: Array<{ type: TypeInfo; key: string }> = [];
      edits.forEach((e, i) => {
        const type = infos.get(e.typeName);
        if (!type) return;
        const key = stableIdOf(e.feature, idProperty);
        if (key === undefined) {
          if (e.action === "create") actions.push({ kind: "insert", type, handle: handle(), feature: e.feature, edits: [i] });
          else results[i] = failure(`an ${e.action} needs a stable id: property "${idProperty}" or the Feature's id`, false);
          return;
        }
        let m = byType.get(type.qname);
        if (!m) byType.set(type.qname, (m = new Map()));
        let st = m.get(key);
        if (!st) {
          m.set(key, (st = { exists: true, edits: [] }));
          order.push({ type, key });
        }
        st.edits.push(i);
        const f = e.feature;
        if (e.action === "create") {
          st.exists = true;
          st.full = { type: "Feature", geometry: f.geometry ?? null, properties: { ...(f.properties ?? {}), [idProperty]: f.properties?.[idProperty] ?? key } };
          delete st.patch;
        } else if (e.action === "update") {
          if (st.full) {
            st.full = { ...st.full, properties: { ...st.full.properties, ...(f.properties ?? {}) }, ...(f.geometry ? { geometry: f.geometry } : {}) };
          } else if (st.exists) {
            st.patch = { properties: { ...(st.patch?.properties ?? {}), ...(f.properties ?? {}) }, ...(f.geometry ? { geometry: f.geometry } : st.patch?.geometry !== undefined ? { geometry: st.patch.geometry } : {}) };
          }
        } else {
          st.exists = false;
          delete st.full;
          delete st.patch;
        }
      });
      const server = new Map<string, Map<string, string[]>>();
      for (const [qname, m] of byType) {
        const type = [...infos.values()].find((t) => t.qname === qname)!;
        server.set(qname, await lookup(http, v, type, idProperty, [...m.keys()]));
      }
      for (const { type, key } of order) {
        const st = byType.get(type.qname)!.get(key)!;
        const fids = server.get(type.qname)!.get(key) ?? [];
        const have = fids.length > 0;
        // An update before any create in this batch assumed the feature exists: without it, nothing to do.
        if (!st.exists) {
          if (have) actions.push({ kind: "delete", type, handle: handle(), fids, edits: st.edits });
          else for (const i of st.edits) results[i] = { ok: true };
        } else if (st.full) {
          if (have) actions.push({ kind: "update", type, handle: handle(), fids, properties: st.full.properties ?? {}, geometry: st.full.geometry, edits: st.edits });
          else actions.push({ kind: "insert", type, handle: handle(), feature: st.full, edits: st.edits });
        } else if (st.patch && have) {
          actions.push({ kind: "update", type, handle: handle(), fids, properties: st.patch.properties, ...(st.patch.geometry !== undefined ? { geometry: st.patch.geometry } : {}), edits: st.edits });
        } else {
          for (const i of st.edits) results[i] = have ? { ok: true, id: fids[0]! } : { ok: true };
        }
      }
      await send(mergeDeletes(actions), results);
      return results;
    },
  };
}

/**
 * The Deletes of one type as few actions with up to LOOKUP_CHUNK FeatureIds each (QGIS Server spends ~70 ms per
 * action, and a Delete by many ids costs about what one does); the edits of one action succeed or fail together.
 */
function mergeDeletes(actions: Action[]): Action[] {
  const merged = new Map<string, Action>();
  const out: Action[] = [];
  for (const a of actions) {
    if (a.kind !== "delete") {
      out.push(a);
      continue;
    }
    const m = merged.get(a.type.qname);
    if (m && m.fids!.length + a.fids!.length <= LOOKUP_CHUNK) {
      m.fids!.push(...a.fids!);
      m.edits.push(...a.edits);
    } else {
      const copy = { ...a, fids: [...a.fids!], edits: [...a.edits] };
      merged.set(a.type.qname, copy);
      out.push(copy);
    }
  }
  return out;
}
