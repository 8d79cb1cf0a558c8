/**
 * The wfs producer: each record is a feature edit (a `{metadata: {actiontype, featuretype}, data: Feature}`
 * envelope or a bare Feature), written by WFS-T Transactions or OGC API Features requests with one result per record.
 */
import { GeoWatchError, guardProducer, payloadText, reasonOf, type ManagedProducer, type Metadata, type OutRecord, type Producer, type SendResult } from "@geowatch/core";
import type { Feature } from "./gml-common.js";
import { BACKEND, wfsHttp, type SecretReader } from "./http.js";
import { ogcApiWriter } from "./ogcapi-write.js";
import type { WfsProducerOptions } from "./options.js";
import { transactionWriter } from "./transaction.js";

export type Action = "create" | "update" | "delete";

/** One feature edit. */
export interface Edit {
  action: Action;
  /** Feature type (WFS) or collection id (OGC API). */
  typeName: string;
  feature: Feature;
}

export type EditResult = { ok: true; id?: string } | { ok: false; error: Error; retryable: boolean };

/** Applies edits; one result per edit, in order. Throws only when the service cannot be reached (every edit to retry). */
export interface EditWriter {
  apply(edits: Edit[]): Promise<EditResult[]>;
}

const ACTIONS: Record<string, Action> = {
  create: "create", insert: "create", add: "create",
  update: "update", modify: "update", replace: "update", change: "update",
  delete: "delete", remove: "delete",
};

export interface EditDefaults {
  typeName?: string | undefined;
  defaultAction?: Action | undefined;
}

function editError(message: string): GeoWatchError {
  return new GeoWatchError("VALIDATE", message, { backend: BACKEND });
}

function isObject(v: unknown): v is Record<string, unknown> {
  return typeof v === "object" && v !== null && !Array.isArray(v);
}

/**
 * The edits a decoded value stands for: an envelope's data (a Feature, a FeatureCollection or a bare
 * geometry) with its `actiontype` and `featuretype`, or a bare Feature with the defaults. Throws a
 * VALIDATE error naming what is missing or unknown.
 */
export function editsOf(value: unknown, d: EditDefaults, recordMeta?: Metadata): Edit[] {
  let meta: Record<string, unknown> = recordMeta ?? {};
  let data: unknown = value;
  if (isObject(value) && value.type === undefined && "data" in value) {
    if (isObject(value.metadata)) meta = { ...meta, ...value.metadata };
    data = value.data;
  }
  const rawAction = meta.actiontype;
  let action: Action | undefined = d.defaultAction ?? "create";
  if (rawAction !== undefined && rawAction !== null) {
    action = typeof rawAction === "string" ? ACTIONS[rawAction.toLowerCase()] : undefined;
    if (!action) throw editError(`metadata.actiontype ${JSON.stringify(rawAction)} is not create, update or delete`);
  }
  const ft = meta.featuretype;
  const typeName = typeof ft === "string" && ft !== "" ? ft : d.typeName;
  if (!typeName) throw editError("no feature type: the envelope has no metadata.featuretype and the node no type_name");
  if (!isObject(data)) throw editError(`the record's data is ${data === null ? "null" : Array.isArray(data) ? "an array" : typeof data}, not a GeoJSON Feature`);
  const features: Feature[] = [];
  if (data.type === "Feature") features.push(data as unknown as Feature);
  else if (data.type === "FeatureCollection" && Array.isArray(data.features)) {
    for (const f of data.features) {
      if (!isObject(f) || f.type !== "Feature") throw editError("a FeatureCollection member is not a Feature");
      features.push(f as unknown as Feature);
    }
  } else if (typeof data.type === "string" && "coordinates" in data || data.type === "GeometryCollection") {
    features.push({ type: "Feature", geometry: data as unknown as Feature["geometry"], properties: {} });
  } else throw editError(`the record's data has type ${JSON.stringify(data.type)}, not a GeoJSON Feature`);
  for (const f of features) {
    if (f.properties !== null && f.properties !== undefined && !isObject(f.properties)) throw editError("a Feature's properties must be an object or null");
  }
  return features.map((feature) => ({ action: action!, typeName, feature }));
}

/** The writer the options ask for. */
export function editWriter(o: WfsProducerOptions, secret?: SecretReader): EditWriter {
  const http = wfsHttp(o, secret);
  return (o.protocol ?? "wfs") === "ogcapi" ? ogcApiWriter(http, o) : transactionWriter(http, o);
}

/** The raw producer (the runtime guards it). */
export function createWfsProducer(o: WfsProducerOptions, deps: { secret?: SecretReader } = {}): Producer {
  const writer = editWriter(o, deps.secret);
  const defaults: EditDefaults = { typeName: o.typeName, defaultAction: o.defaultAction };
  return {
    capabilities: { batching: true, maxBatch: o.maxBatch ?? 200, maxBatchBytes: o.maxBatchBytes ?? 4 * 1024 * 1024 },
    async send(records: OutRecord[]): Promise<SendResult[]> {
      const results: SendResult[] = new Array(records.length);
      const edits: Edit[] = [];
      const owner: number[] = [];
      records.forEach((r, i) => {
        try {
          const value = JSON.parse(payloadText(r.value)) as unknown;
          for (const e of editsOf(value, defaults, r.metadata)) {
            edits.push(e);
            owner.push(i);
          }
        } catch (err) {
          const error = err instanceof GeoWatchError ? err : new GeoWatchError("DECODE", `record is not JSON: ${reasonOf(err)}`, { backend: BACKEND, cause: err });
          results[i] = { ok: false, error, retryable: false };
        }
      });
      const applied = edits.length > 0 ? await writer.apply(edits) : [];
      // A record of several edits (a FeatureCollection) succeeds when all of them did.
      applied.forEach((res, k) => {
        const i = owner[k]!;
        const prev = results[i];
        if (prev && !prev.ok) {
          if (!res.ok && !res.retryable) results[i] = { ok: false, error: res.error, retryable: false };
          return;
        }
        if (!res.ok) results[i] = { ok: false, error: res.error, retryable: res.retryable };
        else if (!prev) results[i] = res.id !== undefined ? { ok: true, id: res.id } : { ok: true };
      });
      for (let i = 0; i < results.length; i++) results[i] ??= { ok: true };
      return results;
    },
  };
}

/** A WFS-T / OGC API Features producer, guarded by the runtime layer. */
export function wfsProducer(o: WfsProducerOptions, deps: { secret?: SecretReader } = {}): ManagedProducer {
  return guardProducer(createWfsProducer(o, deps), { name: "wfs", backend: BACKEND });
}
