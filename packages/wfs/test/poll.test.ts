import { mkdtempSync, renameSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, describe, expect, it } from "vitest";
import type { Consumer, InRecord } from "@geowatch/core";
import { consumerChecks } from "@geowatch/testkit";
import { createWfsConsumer } from "../src/poll.js";
import type { WfsReaderOptions } from "../src/reader-options.js";
import { fakeServer, mapserverUrl, pollFile } from "./reader-helpers.js";

const dir = mkdtempSync(join(tmpdir(), "wfs-poll-"));
let n = 0;
const checkpoint = () => join(dir, `cp-${n++}.sqlite`);

interface Row {
  num: number;
  name: string;
  updated: string;
}

/** Rewrites MapServer's poll layer (by rename, so a request never sees half a file). */
function writeLayer(rows: Row[]): void {
  const fc = { type: "FeatureCollection", features: rows.map((r) => ({ type: "Feature", properties: r, geometry: { type: "Point", coordinates: [r.num, 50] } })) };
  const tmp = `${pollFile()}.tmp`;
  writeFileSync(tmp, JSON.stringify(fc));
  renameSync(tmp, pollFile());
}

const ts = (s: number) => `2026-03-01T00:00:${String(s).padStart(2, "0")}Z`;

function options(cp: string, extra: Partial<WfsReaderOptions> = {}): WfsReaderOptions {
  return { url: mapserverUrl(), allowPrivate: true, version: "2.0.0", typeName: "ms:poll", idField: "num", poll: { field: "updated", serverFilter: true, intervalMs: 200, checkpoint: cp }, ...extra };
}

/** Receives until `want` records came or `ms` passed. */
async function receiveAll(c: Consumer, want: number, ms = 20_000): Promise<InRecord[]> {
  const out: InRecord[] = [];
  const end = Date.now() + ms;
  while (out.length < want && Date.now() < end) out.push(...(await c.receive(100, { waitMs: 300 })));
  return out;
}

const names = (rs: InRecord[]) => rs.map((r) => (JSON.parse(String(r.value)) as { properties: Row }).properties.name);
const commitAll = (c: Consumer, rs: InRecord[]) => c.commit!([rs.at(-1)!.position!]);

async function withConsumer<T>(o: WfsReaderOptions, fn: (c: Consumer) => Promise<T>): Promise<T> {
  const c = createWfsConsumer(o);
  await c.connect!();
  try {
    return await fn(c);
  } finally {
    await c.close!();
  }
}

afterAll(() => {
  writeLayer([1, 2, 3, 4, 5].map((i) => ({ num: i, name: `start${i}`, updated: `2026-02-01T00:00:0${i}Z` })));
});

describe("polling by timestamp (MapServer over a GeoJSON file, with the server-side filter on the field)", () => {
  it("emits new and changed features once acknowledged, re-emits what was not acknowledged after a restart", async () => {
    const cp = checkpoint();
    writeLayer([3, 1, 2].map((i) => ({ num: i, name: `a${i}`, updated: ts(i) })));
    const first = await withConsumer(options(cp), async (c) => {
      const got = await receiveAll(c, 3);
      await commitAll(c, got);
      return got;
    });
    expect(names(first), "oldest first").toEqual(["a1", "a2", "a3"]);
    expect(first.map((r) => r.key)).toEqual(["1", "2", "3"]);

    // A new feature, a changed one (newer timestamp), and one sharing the acknowledged timestamp.
    writeLayer([
      { num: 1, name: "a1", updated: ts(1) },
      { num: 2, name: "a2 changed", updated: ts(5) },
      { num: 3, name: "a3", updated: ts(3) },
      { num: 4, name: "a4 same time as a3", updated: ts(3) },
      { num: 5, name: "a5", updated: ts(4) },
    ]);
    const unacked = await withConsumer(options(cp), (c) => receiveAll(c, 3));
    expect(names(unacked)).toEqual(["a4 same time as a3", "a5", "a2 changed"]);
    // Not acknowledged: a restart emits them again (at-least-once), then nothing more.
    await withConsumer(options(cp), async (c) => {
      const again = await receiveAll(c, 3);
      expect(names(again)).toEqual(names(unacked));
      await commitAll(c, again);
      const more = await receiveAll(c, 1, 1200);
      expect(names(more), "after the commit, the next polls find nothing new").toEqual([]);
    });
    await withConsumer(options(cp), async (c) => {
      expect(names(await receiveAll(c, 1, 1200)), "a restart continues from the checkpoint").toEqual([]);
    });
  });

  it("a commit covers only the records up to its position", async () => {
    const cp = checkpoint();
    writeLayer([1, 2, 3, 4].map((i) => ({ num: i, name: `b${i}`, updated: ts(10 + i) })));
    await withConsumer(options(cp), async (c) => {
      const got = await receiveAll(c, 4);
      await c.commit!([got[1]!.position!]);
    });
    const rest = await withConsumer(options(cp), (c) => receiveAll(c, 2));
    expect(names(rest)).toEqual(["b3", "b4"]);
  });
});

describe("polling by id (content hash per id)", () => {
  it("emits created, updated and deleted features as envelopes; an unchanged layer emits nothing", async () => {
    const cp = checkpoint();
    const o = options(cp, { envelope: true, poll: { field: "num", by: "id", deletes: true, intervalMs: 200, checkpoint: cp } });
    writeLayer([1, 2].map((i) => ({ num: i, name: `c${i}`, updated: ts(1) })));
    await withConsumer(o, async (c) => {
      const got = await receiveAll(c, 2);
      const env = got.map((r) => JSON.parse(String(r.value)) as { metadata: { actiontype: string; featuretype: string }; data: { properties: Row } });
      expect(env.map((e) => [e.metadata.actiontype, e.metadata.featuretype, e.data.properties.name])).toEqual([
        ["create", "ms:poll", "c1"],
        ["create", "ms:poll", "c2"],
      ]);
      await commitAll(c, got);
    });
    // Same timestamp, new name: only a content hash sees it.
    writeLayer([
      { num: 1, name: "c1", updated: ts(1) },
      { num: 2, name: "c2 renamed", updated: ts(1) },
      { num: 3, name: "c3", updated: ts(1) },
    ]);
    await withConsumer(o, async (c) => {
      const got = await receiveAll(c, 2);
      const env = got.map((r) => JSON.parse(String(r.value)) as { metadata: { actiontype: string }; data: { properties: Row } });
      expect(env.map((e) => [e.metadata.actiontype, e.data.properties.name])).toEqual([
        ["update", "c2 renamed"],
        ["create", "c3"],
      ]);
      await commitAll(c, got);
      expect(await receiveAll(c, 1, 1000)).toEqual([]);
    });
    // c1 leaves the layer: a delete, once acknowledged never again.
    writeLayer([
      { num: 2, name: "c2 renamed", updated: ts(1) },
      { num: 3, name: "c3", updated: ts(1) },
    ]);
    await withConsumer(o, async (c) => {
      const got = await receiveAll(c, 1);
      expect(got.map((r) => JSON.parse(String(r.value)) as unknown)).toEqual([{ metadata: { featuretype: "ms:poll", actiontype: "delete" }, data: { type: "Feature", id: 1, geometry: null, properties: null } }]);
      expect(got[0]!.key).toBe("1");
      await commitAll(c, got);
    });
    await withConsumer(o, async (c) => {
      expect(await receiveAll(c, 1, 1000), "after a restart: nothing").toEqual([]);
    });
  });
});

describe("a failing server never ends the stream", () => {
  it("receive returns [] and health reports the error while the server fails; records flow once it answers", async () => {
    let failing = true;
    const caps = `<wfs:WFS_Capabilities version="2.0.0" xmlns:wfs="http://www.opengis.net/wfs/2.0"><wfs:FeatureTypeList><wfs:FeatureType><wfs:Name>t</wfs:Name></wfs:FeatureType></wfs:FeatureTypeList></wfs:WFS_Capabilities>`;
    const server = await fakeServer((req, res) => {
      if (failing) {
        res.statusCode = 503;
        return void res.end("maintenance");
      }
      const q = new URL(req.url ?? "", "http://x").searchParams;
      if (q.get("REQUEST") === "GetCapabilities") return void res.end(caps);
      if (q.get("RESULTTYPE") === "hits") return void res.end(`<wfs:FeatureCollection xmlns:wfs="http://www.opengis.net/wfs/2.0" numberMatched="1" numberReturned="0"/>`);
      res.end(`<wfs:FeatureCollection xmlns:wfs="http://www.opengis.net/wfs/2.0" xmlns:gml="http://www.opengis.net/gml/3.2"><wfs:member><t gml:id="t.1"><updated>2026-01-01</updated><name>back</name></t></wfs:member></wfs:FeatureCollection>`);
    });
    try {
      const cp = checkpoint();
      await withConsumer({ url: server.url, allowPrivate: true, version: "2.0.0", typeName: "t", outputFormat: "gml", poll: { field: "updated", intervalMs: 100, checkpoint: cp } }, async (c) => {
        expect(await c.receive(10, { waitMs: 500 })).toEqual([]);
        const h = c.health!();
        expect(h.ok).toBe(false);
        expect(h.error).toMatch(/HTTP 503: maintenance/);
        failing = false;
        const got = await receiveAll(c, 1, 5000);
        expect(names(got)).toEqual(["back"]);
        expect(c.health!().ok).toBe(true);
      });
      expect(server.requests.length, "the failed read was retried").toBeGreaterThan(2);
    } finally {
      await server.close();
    }
  });
});

describe("reading once (no poll)", () => {
  it("a page that fails is retried from where the read stopped: every feature once", async () => {
    let failed = 0;
    const caps = `<wfs:WFS_Capabilities version="2.0.0" xmlns:wfs="http://www.opengis.net/wfs/2.0"><wfs:FeatureTypeList><wfs:FeatureType><wfs:Name>t</wfs:Name></wfs:FeatureType></wfs:FeatureTypeList></wfs:WFS_Capabilities>`;
    const server = await fakeServer((req, res) => {
      const q = new URL(req.url ?? "", "http://x").searchParams;
      if (q.get("REQUEST") === "GetCapabilities") return void res.end(caps);
      if (q.get("RESULTTYPE") === "hits") return void res.end(`<wfs:FeatureCollection xmlns:wfs="http://www.opengis.net/wfs/2.0" numberMatched="6" numberReturned="0"/>`);
      const start = Number(q.get("STARTINDEX"));
      if (start === 2 && failed++ === 0) {
        res.statusCode = 502;
        return void res.end("bad gateway");
      }
      const members = [start, start + 1].map((i) => `<wfs:member><t gml:id="t.${i}"><name>f${i}</name></t></wfs:member>`).join("");
      res.end(`<wfs:FeatureCollection xmlns:wfs="http://www.opengis.net/wfs/2.0" xmlns:gml="http://www.opengis.net/gml/3.2">${members}</wfs:FeatureCollection>`);
    });
    try {
      const c = createWfsConsumer({ url: server.url, allowPrivate: true, version: "2.0.0", typeName: "t", outputFormat: "gml", pageSize: 2 });
      await c.connect?.();
      const got: InRecord[] = [];
      const end = Date.now() + 15_000;
      while (!(await c.caughtUp!()) && Date.now() < end) got.push(...(await c.receive(10, { waitMs: 500 })));
      await c.close!();
      expect(failed, "the second page failed once").toBe(2);
      expect(names(got)).toEqual(["f0", "f1", "f2", "f3", "f4", "f5"]);
    } finally {
      await server.close();
    }
  });
});

describe("consumer checks of the testkit that apply to a read-only source", () => {
  // An empty selection: nothing matches num = -1, so the channel is empty.
  const harness = async () => ({ consumer: () => createWfsConsumer(options(checkpoint(), { filter: { property: "num", eq: -1 } })) });
  const caps = { ordering: "stream" as const };
  it("declares ordering stream with commit", async () => consumerChecks.declared(await harness(), caps));
  it("receive on an empty selection returns [] after about waitMs", async () => consumerChecks.emptyWait(await harness(), caps));
  it("receive honours an AbortSignal", async () => consumerChecks.abortSignal(await harness(), caps));
  it("close is idempotent", async () => consumerChecks.closeIdempotent(await harness(), caps));
});
