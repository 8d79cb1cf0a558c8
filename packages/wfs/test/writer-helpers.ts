/** Test helpers for the writer tests: the QGIS Server URL, read-back of a layer as GeoJSON, emptying a layer. */
import { requireEnv } from "@geowatch/testkit";

export const HINT = "Start QGIS Server: bash .ci/servers/qgis.sh start && source .servers/env/qgis.env";

export function qgisUrl(): string {
  return requireEnv("GEOWATCH_QGIS_URL", HINT);
}

export interface ReadFeature {
  id: string;
  geometry: { type: string; coordinates?: unknown; geometries?: unknown } | null;
  properties: Record<string, unknown>;
}

/** Every feature of a QGIS layer, as QGIS Server's own GeoJSON output gives it (independent of the reader). */
export async function layerFeatures(typeName: string): Promise<ReadFeature[]> {
  const u = new URL(qgisUrl());
  u.search = new URLSearchParams({ SERVICE: "WFS", VERSION: "1.1.0", REQUEST: "GetFeature", TYPENAME: typeName, OUTPUTFORMAT: "application/json" }).toString();
  const res = await fetch(u);
  if (!res.ok) throw new Error(`GetFeature ${typeName}: HTTP ${res.status}`);
  const body = (await res.json()) as { features: Array<{ id: string; geometry: ReadFeature["geometry"]; properties: Record<string, unknown> }> };
  return body.features.map((f) => ({ id: String(f.id), geometry: f.geometry, properties: f.properties }));
}

/** Deletes every feature of a layer (by FeatureId, the only Delete QGIS Server honours). */
export async function emptyLayer(typeName: string): Promise<void> {
  const ids = (await layerFeatures(typeName)).map((f) => f.id);
  // 50 ids per Delete: QGIS Server 3.22 deletes nothing (and says so only by totalDeleted 0) above ~85.
  for (let i = 0; i < ids.length; i += 50) {
    const fids = ids.slice(i, i + 50).map((id) => `<ogc:FeatureId fid="${id}"/>`).join("");
    const body = `<wfs:Transaction service="WFS" version="1.1.0" xmlns:wfs="http://www.opengis.net/wfs" xmlns:ogc="http://www.opengis.net/ogc" xmlns:qgs="http://www.qgis.org/gml"><wfs:Delete typeName="qgs:${typeName}"><ogc:Filter>${fids}</ogc:Filter></wfs:Delete></wfs:Transaction>`;
    const res = await fetch(qgisUrl(), { method: "POST", body, headers: { "content-type": "text/xml" } });
    if (!res.ok) throw new Error(`emptying ${typeName}: HTTP ${res.status}`);
  }
  const left = await layerFeatures(typeName);
  if (left.length > 0) throw new Error(`emptying ${typeName}: ${left.length} features left`);
}

export function byUid(features: ReadFeature[]): Map<string, ReadFeature[]> {
  const m = new Map<string, ReadFeature[]>();
  for (const f of features) {
    const k = String(f.properties.uid);
    m.set(k, [...(m.get(k) ?? []), f]);
  }
  return m;
}
