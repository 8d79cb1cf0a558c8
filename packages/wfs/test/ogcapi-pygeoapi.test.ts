/**
 * OGC API Features Part 4 writes against pygeoapi 0.21 (TinyDB provider, editable): create, replace (PUT
 * changes the geometry here, unlike QGIS Server), delete, replays; bearer and Basic auth through a loopback
 * proxy that checks the Authorization header before forwarding.
 */
import { createServer, request, type Server } from "node:http";
import { mkdtempSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { isGeoWatchError, type OutRecord } from "@geowatch/core";
import { requireEnv } from "@geowatch/testkit";
import { createWfsProducer } from "../src/producer.js";

const HINT = "Start pygeoapi: bash .ci/servers/pygeoapi.sh start && source .servers/env/pygeoapi.env";
const url = () => requireEnv("GEOWATCH_PYGEOAPI_URL", HINT);
const COLLECTION = "points";

interface Item { id: string; geometry: { type: string; coordinates: number[] } | null; properties: Record<string, unknown> }

async function items(): Promise<Item[]> {
  const res = await fetch(`${url()}/collections/${COLLECTION}/items?f=json&limit=10000`);
  expect(res.status).toBe(200);
  return ((await res.json()) as { features: Item[] }).features;
}

async function clear(): Promise<void> {
  for (const f of await items()) {
    const res = await fetch(`${url()}/collections/${COLLECTION}/items/${encodeURIComponent(f.id)}`, { method: "DELETE" });
    expect(res.status).toBeLessThan(300);
  }
}

function edit(actiontype: string, uid: string, props: Record<string, unknown> = {}, coords: [number, number] = [10, 50]): OutRecord {
  return { value: JSON.stringify({ metadata: { actiontype, featuretype: COLLECTION }, data: { type: "Feature", geometry: { type: "Point", coordinates: coords }, properties: { uid, ...props } } }) };
}

describe("wfs producer: OGC API Features on pygeoapi", () => {
  it("create, replace, delete with ids from Location; replays converge; every value kept", async () => {
    await clear();
    const p = createWfsProducer({ url: url(), protocol: "ogcapi", allowPrivate: true, idProperty: "uid" });
    const res = await p.send([edit("create", "p1", { name: "", count: 0, flag: false, note: null }, [1, 2]), edit("create", "p2", { name: "Zürich", count: 2 })]);
    expect(res.map((r) => r.ok)).toEqual([true, true]);
    let got = await items();
    expect(got.map((f) => f.id).sort()).toEqual(res.map((r) => (r.ok ? r.id : "")).sort());
    const p1 = got.find((f) => f.properties.uid === "p1")!;
    expect(p1.properties).toEqual({ uid: "p1", name: "", count: 0, flag: false, note: null });
    expect(res[0]!.ok && res[0]!.id).toBe(p1.id);
    // Replay of the creates, an update that moves p2, a delete of p1 twice, an update of an id never created.
    const second = await p.send([edit("create", "p1", { name: "", count: 0, flag: false, note: null }, [1, 2]), edit("update", "p2", { count: 3 }, [7, 8]), edit("delete", "p1"), edit("delete", "p1"), edit("update", "p9")]);
    expect(second.every((r) => r.ok)).toBe(true);
    got = await items();
    expect(got).toHaveLength(1);
    expect(got[0]!.properties).toMatchObject({ uid: "p2", count: 3 });
    expect(got[0]!.geometry).toEqual({ type: "Point", coordinates: [7, 8] });
  });
});

describe("wfs producer: auth headers (loopback proxy in front of pygeoapi)", () => {
  let proxy: Server;
  let proxyUrl = "";
  const seen: string[] = [];
  const dir = mkdtempSync(join(tmpdir(), "gw-wfs-auth-"));
  const tokenFile = join(dir, "token");
  writeFileSync(tokenFile, "s3cret-token\n");

  beforeAll(async () => {
    const target = new URL(url());
    proxy = createServer((req, res) => {
      const auth = req.headers.authorization ?? "";
      seen.push(auth);
      if (auth !== "Bearer s3cret-token" && auth !== `Basic ${Buffer.from("editor:pa:ss").toString("base64")}`) {
        res.writeHead(401, { "www-authenticate": "Bearer" }).end("no");
        return;
      }
      const up = request({ host: target.hostname, port: target.port, method: req.method, path: req.url, headers: { ...req.headers, host: target.host } }, (r) => {
        res.writeHead(r.statusCode ?? 502, r.headers);
        r.pipe(res);
      });
      up.on("error", () => res.writeHead(502).end());
      req.pipe(up);
    });
    await new Promise<void>((resolve) => proxy.listen(0, "127.0.0.1", resolve));
    const addr = proxy.address();
    proxyUrl = `http://127.0.0.1:${typeof addr === "object" && addr ? addr.port : 0}`;
  });
  afterAll(() => new Promise<void>((resolve) => proxy.close(() => resolve())));

  it("sends the bearer token from token_file, and Basic auth from username/password; a refused credential throws AUTH", async () => {
    await clear();
    const bearer = createWfsProducer({ url: proxyUrl, protocol: "ogcapi", allowPrivate: true, tokenFile });
    expect((await bearer.send([edit("create", "a1")]))[0]!.ok).toBe(true);
    const basic = createWfsProducer({ url: proxyUrl, protocol: "ogcapi", allowPrivate: true, username: "editor", password: "pa:ss" });
    expect((await basic.send([edit("create", "a2")]))[0]!.ok).toBe(true);
    expect((await items()).map((f) => f.properties.uid).sort()).toEqual(["a1", "a2"]);
    const wrong = createWfsProducer({ url: proxyUrl, protocol: "ogcapi", allowPrivate: true, token: "wrong" });
    const err = await wrong.send([edit("create", "a3")]).then(() => undefined, (e: unknown) => e);
    expect(isGeoWatchError(err, "AUTH"), String(err)).toBe(true);
    expect(String(err)).not.toMatch(/wrong/);
    expect(seen).toContain("Bearer s3cret-token");
    expect(seen).toContain(`Basic ${Buffer.from("editor:pa:ss").toString("base64")}`);
  });

  it("a user name and a token together is a CONFIG error", () => {
    expect(() => createWfsProducer({ url: proxyUrl, username: "u", password: "p", token: "t" })).toThrow(/use one/);
  });
});
