// Polling a second implementation: QGIS Server 3.22 (WFS 1.1.0 only, GML with latitude first), its `poll`
// layer edited through WFS-T while the consumer polls it.
import { mkdtempSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { describe, expect, it } from "vitest";
import type { Consumer, InRecord } from "@geowatch/core";
import { requireEnv } from "@geowatch/testkit";
import { createWfsConsumer } from "../src/poll.js";
import type { WfsReaderOptions } from "../src/reader-options.js";

const HINT = "Start QGIS Server: bash .ci/servers/qgis.sh start && source .servers/env/qgis.env";
const dir = mkdtempSync(join(tmpdir(), "wfs-poll-qgis-"));

async function transaction(body: string): Promise<string> {
  const url = requireEnv("GEOWATCH_QGIS_URL", HINT);
  const res = await fetch(url, {
    method: "POST",
    headers: { "content-type": "text/xml" },
    body: `<wfs:Transaction service="WFS" version="1.1.0" xmlns:wfs="http://www.opengis.net/wfs" xmlns:ogc="http://www.opengis.net/ogc" xmlns:gml="http://www.opengis.net/gml" xmlns:qgs="http://www.qgis.org/gml">${body}</wfs:Transaction>`,
  });
  const text = await res.text();
  expect(text, "the transaction changed something").toMatch(/total(Inserted|Updated)>[1-9]/);
  return text;
}

const insert = (uid: string, name: string, updated: string, x: number) =>
  `<wfs:Insert><qgs:poll><qgs:geometry><gml:Point><gml:pos>${x} 45</gml:pos></gml:Point></qgs:geometry><qgs:uid>${uid}</qgs:uid><qgs:name>${name}</qgs:name><qgs:updated>${updated}</qgs:updated></qgs:poll></wfs:Insert>`;

async function receiveAll(c: Consumer, want: number, ms = 20_000): Promise<InRecord[]> {
  const out: InRecord[] = [];
  const end = Date.now() + ms;
  while (out.length < want && Date.now() < end) out.push(...(await c.receive(100, { waitMs: 300 })));
  return out;
}

interface Got {
  id: string;
  geometry: { coordinates: number[] };
  properties: { name: string };
}
const parsed = (rs: InRecord[]) => rs.map((r) => JSON.parse(String(r.value)) as Got);

describe("polling QGIS Server (WFS 1.1.0, GML)", () => {
  it("by timestamp: inserted features arrive oldest first, longitude first; later inserts only", async () => {
    const uid = `poll-ts-${Date.now()}`;
    await transaction([insert(uid, "second", "2026-04-01T10:00:02", 2), insert(uid, "first", "2026-04-01T10:00:01", 1)].join(""));
    const o: WfsReaderOptions = {
      url: requireEnv("GEOWATCH_QGIS_URL", HINT),
      allowPrivate: true,
      typeName: "poll",
      outputFormat: "gml",
      filter: { property: "uid", eq: uid },
      poll: { field: "updated", intervalMs: 200, checkpoint: join(dir, "ts.sqlite") },
    };
    const c = createWfsConsumer(o);
    await c.connect!();
    try {
      const got = await receiveAll(c, 2);
      expect(parsed(got).map((f) => [f.properties.name, f.geometry.coordinates])).toEqual([
        ["first", [1, 45]],
        ["second", [2, 45]],
      ]);
      expect(parsed(got)[0]!.id).toMatch(/^poll\./);
      await c.commit!([got.at(-1)!.position!]);
      await transaction(insert(uid, "third", "2026-04-01T10:00:03", 3));
      const more = await receiveAll(c, 1);
      expect(parsed(more).map((f) => f.properties.name)).toEqual(["third"]);
      await c.commit!([more.at(-1)!.position!]);
      expect(await receiveAll(c, 1, 1000)).toEqual([]);
    } finally {
      await c.close!();
    }
  });

  it("by id: an Update through WFS-T shows up as an update envelope", async () => {
    const uid = `poll-id-${Date.now()}`;
    await transaction([insert(uid, "a", "2026-04-01T00:00:00", 5), insert(uid, "b", "2026-04-01T00:00:00", 6)].join(""));
    const o: WfsReaderOptions = {
      url: requireEnv("GEOWATCH_QGIS_URL", HINT),
      allowPrivate: true,
      typeName: "poll",
      envelope: true,
      filter: { property: "uid", eq: uid },
      poll: { field: "uid", by: "id", intervalMs: 200, checkpoint: join(dir, "id.sqlite") },
    };
    const c = createWfsConsumer(o);
    await c.connect!();
    try {
      const got = await receiveAll(c, 2);
      expect(got.map((r) => (JSON.parse(String(r.value)) as { metadata: { actiontype: string } }).metadata.actiontype)).toEqual(["create", "create"]);
      await c.commit!([got.at(-1)!.position!]);
      await transaction(
        `<wfs:Update typeName="qgs:poll"><wfs:Property><wfs:Name>name</wfs:Name><wfs:Value>b changed</wfs:Value></wfs:Property><ogc:Filter><ogc:And><ogc:PropertyIsEqualTo><ogc:PropertyName>uid</ogc:PropertyName><ogc:Literal>${uid}</ogc:Literal></ogc:PropertyIsEqualTo><ogc:PropertyIsEqualTo><ogc:PropertyName>name</ogc:PropertyName><ogc:Literal>b</ogc:Literal></ogc:PropertyIsEqualTo></ogc:And></ogc:Filter></wfs:Update>`,
      );
      const changed = await receiveAll(c, 1);
      const env = changed.map((r) => JSON.parse(String(r.value)) as { metadata: { actiontype: string }; data: Got });
      expect(env.map((e) => [e.metadata.actiontype, e.data.properties.name])).toEqual([["update", "b changed"]]);
    } finally {
      await c.close!();
    }
  });
});
