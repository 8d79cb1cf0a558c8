/**
 * testkit producerSuite against QGIS Server through WFS-T. The suite sends text records and reads them back:
 * the harness wraps the real producer so each text becomes a Feature edit (its text as the `uid`), and reads
 * the layer back through GetFeature. storeSuite does not apply (a WFS layer is edited, not a byte value per
 * key); the store's own checks are in writer-store.test.ts.
 */
import type { OutRecord, Producer, SendResult } from "@geowatch/core";
import { producerSuite } from "@geowatch/testkit";
import { createWfsProducer } from "../src/producer.js";
import { emptyLayer, layerFeatures, qgisUrl } from "./writer-helpers.js";

const LAYER = "conformance";

function asEdits(p: Producer): Producer {
  return {
    ...(p.capabilities ? { capabilities: p.capabilities } : {}),
    send(records: OutRecord[]): Promise<SendResult[]> {
      return p.send(
        records.map((r) => ({
          value: JSON.stringify({ metadata: { actiontype: "create" }, data: { type: "Feature", geometry: { type: "Point", coordinates: [1, 2] }, properties: { uid: String(r.value) } } }),
        })),
      );
    },
    ...(p.close ? { close: () => p.close!() } : {}),
  };
}

producerSuite("wfs (WFS-T 1.1.0, QGIS Server)", {
  capabilities: { ordering: "none" },
  timeoutMs: 20_000,
  setup: async () => {
    await emptyLayer(LAYER);
    return {
      producer: () => asEdits(createWfsProducer({ url: qgisUrl(), allowPrivate: true, typeName: LAYER, idProperty: "uid", srsName: "EPSG:4326", axisOrder: "lonlat", nulls: "omit" })),
      readBack: async (n: number, timeoutMs: number) => {
        const deadline = Date.now() + timeoutMs;
        for (;;) {
          const got = (await layerFeatures(LAYER)).map((f) => String(f.properties.uid));
          if (got.length >= n || Date.now() > deadline) return got;
          await new Promise((r) => setTimeout(r, 200));
        }
      },
    };
  },
});
