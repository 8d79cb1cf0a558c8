import { describe, expect, it } from "vitest";
import { isGeoWatchError } from "@geowatch/core";
import type { Message } from "@geowatch/core";
import { geoserverEvents, geoserverMapping } from "../src/index.js";

// Shapes as GeoServer's notification-geonode encoder writes them (GeoNodeJsonEncoder + KombuMessage).
const layerAdd = {
  id: "1f3a:15b2c:-7ffe",
  type: "Catalog",
  action: "Add",
  generator: "GeoServer",
  timestamp: "2026-03-01T10:20Z",
  user: "admin",
  originator: "10.0.0.5",
  source: {
    id: "LayerInfoImpl--570ae188:124761b8d78:-7fc0",
    type: "LayerInfo",
    name: "states",
    workspace: "topp",
    resourceType: "VECTOR",
    defaultStyle: "population",
    styles: "polygon,line",
    bounds: { minx: -13884991, miny: 2870341, maxx: -7455066, maxy: 6338219, crs: "EPSG:3857" },
    geographicBunds: { minx: -124.73, miny: 24.96, maxx: -66.97, maxy: 49.37, crs: "EPSG:4326" },
  },
};
const styleChange = { ...layerAdd, id: "a2", action: "Update", properties: { defaultStyle: "topp:pophatch" } };
const storeRemove = { id: "a3", type: "Catalog", action: "Remove", timestamp: "2026-03-01T11:00Z", user: "admin", source: { id: "DataStoreInfoImpl-1", type: "StoreInfo", name: "states_shp", workspace: "topp" } };
const workspaceAdd = { id: "a4", type: "Catalog", action: "Add", timestamp: "2026-03-01T11:05Z", source: { id: "WorkspaceInfoImpl-1", type: "WorkspaceInfo", name: "tiger", namespaceURI: "" } };
const wfsT = {
  id: "a5",
  type: "Data",
  timestamp: "2026-03-01T12:00Z",
  user: "editor",
  source: { id: "FeatureTypeInfoImpl-9", type: "FeatureTypeInfo", name: "roads", workspace: "tiger", nativeName: "roads", store: "nyc" },
  properties: { inserted: 3, updated: 1, bounds: { minx: -74.02, miny: 40.7, maxx: -73.95, maxy: 40.78, crs: "EPSG:4326" } },
};
// The form in the GNIP-49 proposal.
const proposal = {
  id: "123e4567-e89b-12d3-a456-426655440006",
  type: "PostUpdateEvent",
  generator: "GeoServer",
  timestamp: 573828946756,
  user: "admin",
  originator: "localhost",
  source: { id: "FeatureTypeInfoImpl--570ae188:124761b8d78:-7fc1", name: "states", nativeName: "states", namespace: "topp", title: "USA Population" },
  totalInserted: 56,
};

describe("geoserverMapping", () => {
  it("maps a layer added to the catalog, with the lon/lat bounds as bbox", () => {
    const m = geoserverMapping.toMessage(layerAdd);
    expect(m.metadata).toEqual({
      id: "1f3a:15b2c:-7ffe", actiontype: "create", targettype: "layer", featuretype: "topp:states", date: "2026-03-01T10:20:00.000Z",
      bbox: [-124.73, 24.96, -66.97, 49.37], workspace: "topp", name: "states", user: "admin", generator: "GeoServer", originator: "10.0.0.5",
    });
    expect(m.value.data).toBe(layerAdd);
    expect(m.key).toBe("1f3a:15b2c:-7ffe");
    expect(geoserverMapping.fromMessage!(m)).toBe(layerAdd);
  });

  it("maps a style change, a store removal and a new workspace", () => {
    expect(geoserverMapping.toMessage(styleChange).metadata).toMatchObject({ actiontype: "update", targettype: "layer", featuretype: "topp:states", changed: ["defaultStyle"] });
    const s = geoserverMapping.toMessage(storeRemove).metadata!;
    expect(s).toMatchObject({ actiontype: "delete", targettype: "store", workspace: "topp", name: "states_shp" });
    expect(s.featuretype).toBeUndefined();
    expect(geoserverMapping.toMessage(workspaceAdd).metadata).toMatchObject({ actiontype: "create", targettype: "workspace", name: "tiger" });
  });

  it("maps a WFS-T transaction with its counts and bounds", () => {
    expect(geoserverMapping.toMessage(JSON.stringify(wfsT)).metadata).toEqual({
      id: "a5", actiontype: "edit", targettype: "data", featuretype: "tiger:roads", inserted: 3, updated: 1, date: "2026-03-01T12:00:00.000Z",
      bbox: [-74.02, 40.7, -73.95, 40.78], workspace: "tiger", name: "roads", user: "editor",
    });
  });

  it("reads the GNIP-49 proposal form", () => {
    expect(geoserverMapping.toMessage(proposal).metadata).toMatchObject({ actiontype: "edit", targettype: "data", featuretype: "topp:states", inserted: 56, date: new Date(573828946756).toISOString() });
  });

  it("leaves out a bbox whose CRS is not lon/lat", () => {
    const m = geoserverMapping.toMessage({ ...wfsT, properties: { updated: 1, bounds: { minx: 500000, miny: 4500000, maxx: 510000, maxy: 4510000, crs: "EPSG:32618" } } });
    expect(m.metadata!.bbox).toBeUndefined();
  });

  it("refuses what is not a GeoServer notification, saying why", () => {
    const err = (v: unknown) => {
      try {
        geoserverMapping.toMessage(v);
      } catch (e) {
        return e;
      }
      return undefined;
    };
    expect(isGeoWatchError(err("{nope"), "DECODE")).toBe(true);
    expect(String(err({ type: "Catalog", action: "Add", source: { type: "Banana" } }))).toContain('source type "Banana"');
    expect(String(err({ type: "Catalog", action: "Explode", source: { type: "LayerInfo" } }))).toContain('catalog action "Explode"');
    expect(String(err({ type: "Service" }))).toContain("neither Catalog nor Data");
  });
});

describe("geoserver_events stage", () => {
  it("turns notifications into envelopes and dead-letters the rest with the reason", async () => {
    const parsed = geoserverEvents.parse({});
    expect(parsed.ok).toBe(true);
    const stage = await geoserverEvents.create(parsed.ok ? parsed.options : {}, { name: "gs", logger: { debug() {}, info() {}, warn() {}, error() {} }, secret: () => undefined, baseDir: "." });
    const batch: Message[] = [{ value: layerAdd }, { value: "not json" }, { value: new TextEncoder().encode(JSON.stringify(wfsT)) }];
    const out = await stage.process(batch);
    expect(out.pass.map((m) => m.metadata?.actiontype)).toEqual(["create", "edit"]);
    expect(out.dead).toHaveLength(1);
    expect(out.dead![0]!.reason).toMatch(/^\[geowatch\] \[geoserver\] gs: not a GeoServer notification: not JSON: /);
    expect(geoserverEvents.parse({ on_unknown: "explode" }).ok).toBe(false);
  });
});
