import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { buildServer, createFetcher, harvest, parseXml } from "../src/index.js";
import type { Registry } from "../src/index.js";
import { env, fixtureServer, tmpRegistry } from "./helpers.js";

const BOMB = `<?xml version="1.0"?>
<!DOCTYPE lolz [
  <!ENTITY lol "lol">
  <!ENTITY lol1 "&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;">
  <!ENTITY lol2 "&lol1;&lol1;&lol1;&lol1;&lol1;&lol1;&lol1;&lol1;&lol1;&lol1;">
  <!ENTITY lol3 "&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;">
]>
<WMS_Capabilities version="1.3.0"><Service><Title>&lol3;</Title></Service></WMS_Capabilities>`;
const XXE = `<?xml version="1.0"?><!DOCTYPE r [<!ENTITY xxe SYSTEM "file:///etc/passwd">]><WMS_Capabilities version="1.3.0"><Service><Title>&xxe;</Title></Service></WMS_Capabilities>`;
const TRUNCATED = `<?xml version="1.0"?><WMS_Capabilities version="1.3.0"><Service><Title>Cut</Title></Service><Capability><Layer><Name>a</Name>`;

describe("URL policy on harvests", () => {
  it("refuses loopback service URLs unless allowed, naming the URL and why", async () => {
    const reg = await tmpRegistry({ urlPolicy: { allowPrivate: false } });
    try {
      await expect(reg.add(env.qgis(), { type: "OGC:WMS" })).rejects.toMatchObject({ code: "URL_REFUSED", message: expect.stringContaining("127.0.0.1") });
      expect(await reg.storage.listServices()).toEqual([]);
    } finally {
      await reg.close();
    }
    const open = await tmpRegistry({ urlPolicy: { allowHosts: ["127.0.0.1"] } });
    try {
      const [s] = await open.add(env.qgis(), { type: "OGC:WMS", enqueue: false });
      const u = await open.harvestUpdate(s!.id);
      expect(u).toMatchObject({ kind: "harvest", ok: true });
    } finally {
      await open.close();
    }
  });

  it("denyHosts wins over allowPrivate", async () => {
    const reg = await tmpRegistry({ urlPolicy: { allowPrivate: true, denyHosts: ["127.0.0.0/8"] } });
    try {
      await expect(reg.add(env.qgis(), { type: "OGC:WMS" })).rejects.toMatchObject({ code: "URL_REFUSED" });
    } finally {
      await reg.close();
    }
  });

  it("re-checks every redirect hop: an allowed host redirecting to a refused one fails the harvest", async () => {
    const srv = await fixtureServer((_req, url) =>
      url.pathname === "/wms" ? { status: 302, body: "", headers: { location: `http://localhost:${new URL(env.qgis()).port}/ows${url.search}` } } : undefined,
    );
    try {
      const fetcher = createFetcher({ allowHosts: ["127.0.0.1"] });
      await expect(harvest(`${srv.url}/wms`, "OGC:WMS", { fetcher })).rejects.toMatchObject({ code: "URL_REFUSED", message: expect.stringContaining("localhost") });
      expect(srv.requests.length).toBeGreaterThan(0);
    } finally {
      await srv.close();
    }
  });
});

describe("hostile and broken capabilities", () => {
  let srv: Awaited<ReturnType<typeof fixtureServer>>;
  let reg: Registry;
  beforeAll(async () => {
    srv = await fixtureServer((_req, url) => {
      const docs: Record<string, string> = { "/bomb": BOMB, "/xxe": XXE, "/truncated": TRUNCATED, "/html": "<html><body>Not a WMS</body></html>", "/huge": `<a>${"x".repeat(3 * 1024 * 1024)}</a>` };
      const body = docs[url.pathname];
      return body === undefined ? undefined : { type: "text/xml", body };
    });
    reg = await tmpRegistry({ harvest: { maxBytes: 1024 * 1024 } });
  });
  afterAll(async () => {
    await reg.close();
    await srv.close();
  });

  it.each([
    ["/bomb", /ENTITY declarations are refused/],
    ["/xxe", /ENTITY declarations are refused/],
    ["/truncated", /not well-formed/],
    ["/html", /not a WMS capabilities document/],
    ["/huge", /larger than 1048576 bytes/],
  ])("%s is a failed harvest with its reason, not a crash", async (path, reason) => {
    const [s] = await reg.add(`${srv.url}${path}`, { type: "OGC:WMS", enqueue: false });
    const u = await reg.harvestUpdate(s!.id);
    expect(u).toMatchObject({ kind: "harvest", ok: false });
    expect(u.kind === "harvest" && !u.ok && u.error).toMatch(reason);
    await reg.apply(u);
    expect(await reg.storage.getService(s!.id)).toMatchObject({ harvestOk: false, harvestError: expect.stringMatching(reason) });
  });

  it("the XML parser never expands entities: predefined ones and character references decode as text", () => {
    const doc = parseXml(`<a t="x &amp; y">&lt;b&gt; &#233;&#x41; &unknown;</a>`, "test");
    expect(doc.a).toEqual({ "#text": "<b> éA &unknown;", "@t": "x & y" });
    expect(() => parseXml(BOMB, "test")).toThrow(/ENTITY/);
    expect(() => parseXml(`<!DOCTYPE a [<!ELEMENT a ANY><!NOTATION n SYSTEM "x">]><a/>`, "test")).toThrow(/DOCTYPE declaration refused/);
  });

  it("CSW requests with entity declarations are answered with an ows:ExceptionReport", async () => {
    const app = await buildServer(reg, { publicUrl: "http://127.0.0.1:1" });
    try {
      const res = await app.inject({ method: "POST", url: "/csw", headers: { "content-type": "application/xml" }, payload: BOMB.replace("WMS_Capabilities", "csw:GetRecords").replace("WMS_Capabilities", "csw:GetRecords") });
      expect(res.statusCode).toBe(400);
      expect(res.body).toContain("ows:ExceptionReport");
      expect(res.body).toContain("ENTITY declarations are refused");
    } finally {
      await app.close();
    }
  });
});
