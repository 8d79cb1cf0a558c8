import { execFile } from "node:child_process";
import { readdirSync, readFileSync } from "node:fs";
import { join } from "node:path";
import { promisify } from "node:util";
import type { FastifyInstance } from "fastify";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { buildServer } from "../src/index.js";
import type { Registry } from "../src/index.js";
import { recordsFromXml } from "../src/cli.js";
import { env, tmpRegistry } from "./helpers.js";

const run = promisify(execFile);
const RECORDS = join(import.meta.dirname, "..", "..", "..", ".ci", "servers", "registry", "csw-records");
const PASSWORD = "s3cret-for-tests";

describe("CSW 2.0.2 endpoint", () => {
  let reg: Registry;
  let app: FastifyInstance;
  let url: string;

  beforeAll(async () => {
    reg = await tmpRegistry({ csw: { username: "editor", password: PASSWORD } });
    for (const f of readdirSync(RECORDS)) await reg.storage.upsertRecords(recordsFromXml(readFileSync(join(RECORDS, f), "utf8"), f));
    app = await buildServer(reg);
    const address = await app.listen({ host: "127.0.0.1", port: 0 });
    url = `${address}/csw`;
    // Advertise the real URL: OWSLib posts to what the capabilities say.
    app.publicUrl = address;
  });
  afterAll(async () => {
    await app?.close();
    await reg?.close();
  });

  it("answers the calls QGIS MetaSearch makes, through OWSLib", async () => {
    const { stdout } = await run(env.owslibPython(), [join(import.meta.dirname, "owslib_client.py"), url, "editor", PASSWORD], { timeout: 60_000 });
    const out = JSON.parse(stdout);
    expect(out.title).toBe("GeoWatch registry");
    expect(out.operations).toEqual(["DescribeRecord", "GetCapabilities", "GetRecordById", "GetRecords", "Transaction"]);
    expect(out.getrecords_post).toEqual([url]);
    expect(out.all).toEqual({ matched: 3, returned: 3, ids: ["urn:geowatch:test:quakes", "urn:geowatch:test:rivers", "urn:geowatch:test:roads"] });
    expect(out.anytext).toEqual(["urn:geowatch:test:roads"]);
    expect(out.roads).toEqual({ title: "Roads of Boston", abstract: "Street centrelines of Boston, Massachusetts", subjects: ["transport", "roads"], bbox: ["-71.2", "42.2", "-70.9", "42.5"] }); // OWSLib reads the EPSG:4326 URN as lat/lon and swaps
    expect(out.bbox).toEqual(["urn:geowatch:test:quakes", "urn:geowatch:test:roads"]);
    expect(out.and).toEqual(["urn:geowatch:test:quakes", "urn:geowatch:test:rivers", "urn:geowatch:test:roads"]);
    expect(out.or).toEqual(["urn:geowatch:test:rivers", "urn:geowatch:test:roads"]);
    expect(out.not).toEqual(["urn:geowatch:test:quakes", "urn:geowatch:test:roads"]);
    expect(out.hits).toEqual({ matched: 3, returned: 0 });
    expect(out.paging).toEqual({ page1: ["Earthquakes 2013", "Rivers of Europe"], next: 3, page2: ["Roads of Boston"] });
    expect(out.iso).toEqual({ title: "Rivers of Europe", id: "urn:geowatch:test:rivers" });
    expect(out.byid).toEqual(["urn:geowatch:test:quakes"]);
    expect(out.insert_anonymous).toMatch(/^refused/);
    // OWSLib 0.35 reads the insert results but not the TransactionSummary (it looks for it one level too
    // deep), so updates and deletes are verified by reading the record back.
    expect(out.insert).toMatchObject({ insertresults: ["urn:geowatch:test:inserted"] });
    expect(out.after_update).toEqual(["Glaciers of Patagonia (2024)"]);
    expect(out.after_delete).toEqual([]);
  });

  const post = (body: string, auth?: string) =>
    app.inject({ method: "POST", url: "/csw", headers: { "content-type": "application/xml", ...(auth ? { authorization: auth } : {}) }, payload: body });
  const getRecords = (filter: string, extra = "") =>
    post(`<csw:GetRecords xmlns:csw="http://www.opengis.net/cat/csw/2.0.2" xmlns:ogc="http://www.opengis.net/ogc" xmlns:gml="http://www.opengis.net/gml" service="CSW" version="2.0.2" resultType="results" maxRecords="10"><csw:Query typeNames="csw:Record"><csw:ElementSetName>brief</csw:ElementSetName>${filter ? `<csw:Constraint version="1.1.0"><ogc:Filter>${filter}</ogc:Filter></csw:Constraint>` : ""}${extra}</csw:Query></csw:GetRecords>`);
  const ids = (xml: string) => [...xml.matchAll(/<dc:identifier>([^<]+)<\/dc:identifier>/g)].map((m) => m[1]);

  it("filters on dates, equality, case and nesting; sorts descending", async () => {
    const after = await getRecords(`<ogc:PropertyIsGreaterThanOrEqualTo><ogc:PropertyName>dct:modified</ogc:PropertyName><ogc:Literal>2014-01-01</ogc:Literal></ogc:PropertyIsGreaterThanOrEqualTo>`);
    expect(ids(after.body)).toEqual(["urn:geowatch:test:rivers"]);
    const between = await getRecords(`<ogc:And><ogc:PropertyIsGreaterThan><ogc:PropertyName>dct:modified</ogc:PropertyName><ogc:Literal>2013-01-01</ogc:Literal></ogc:PropertyIsGreaterThan><ogc:PropertyIsLessThan><ogc:PropertyName>dct:modified</ogc:PropertyName><ogc:Literal>2013-07-01</ogc:Literal></ogc:PropertyIsLessThan></ogc:And>`);
    expect(ids(between.body)).toEqual(["urn:geowatch:test:roads"]);
    const eqCase = await getRecords(`<ogc:PropertyIsEqualTo matchCase="false"><ogc:PropertyName>dc:subject</ogc:PropertyName><ogc:Literal>HAZARDS</ogc:Literal></ogc:PropertyIsEqualTo>`);
    expect(ids(eqCase.body)).toEqual(["urn:geowatch:test:quakes"]);
    const nested = await getRecords(`<ogc:Or><ogc:Not><ogc:PropertyIsLike wildCard="*" singleChar="?" escapeChar="!"><ogc:PropertyName>csw:AnyText</ogc:PropertyName><ogc:Literal>*e?rth*</ogc:Literal></ogc:PropertyIsLike></ogc:Not><ogc:BBOX><ogc:PropertyName>ows:BoundingBox</ogc:PropertyName><gml:Envelope srsName="urn:ogc:def:crs:OGC:1.3:CRS84"><gml:lowerCorner>170 -80</gml:lowerCorner><gml:upperCorner>175 -75</gml:upperCorner></gml:Envelope></ogc:BBOX></ogc:Or>`, `<ogc:SortBy xmlns:ogc="http://www.opengis.net/ogc"><ogc:SortProperty><ogc:PropertyName>dc:title</ogc:PropertyName><ogc:SortOrder>DESC</ogc:SortOrder></ogc:SortProperty></ogc:SortBy>`);
    expect(ids(nested.body)).toEqual(["urn:geowatch:test:roads", "urn:geowatch:test:rivers", "urn:geowatch:test:quakes"]);
  });

  it("GET KVP with CQL_TEXT, DescribeRecord, and exception reports for bad requests", async () => {
    const cql = await app.inject({ url: `/csw?service=CSW&version=2.0.2&request=GetRecords&typenames=csw:Record&resulttype=results&elementsetname=full&constraintlanguage=CQL_TEXT&constraint=${encodeURIComponent("dc:title LIKE '%Europe%'")}` });
    expect(ids(cql.body)).toEqual(["urn:geowatch:test:rivers"]);
    expect(cql.body).toContain('numberOfRecordsMatched="1"');
    const dr = await app.inject({ url: "/csw?service=CSW&version=2.0.2&request=DescribeRecord" });
    expect(dr.body).toContain("csw:DescribeRecordResponse");
    const bad = await getRecords(`<ogc:PropertyIsLike><ogc:PropertyName>dc:colour</ogc:PropertyName><ogc:Literal>x</ogc:Literal></ogc:PropertyIsLike>`);
    expect(bad.statusCode).toBe(400);
    expect(bad.body).toContain("unknown queryable &quot;dc:colour&quot;");
    const unknown = await app.inject({ url: "/csw?service=CSW&version=2.0.2&request=Harvest" });
    expect(unknown.body).toContain('exceptionCode="OperationNotSupported"');
  });

  it("Transaction: wrong credentials get 401; disabled without a password", async () => {
    const tx = `<csw:Transaction xmlns:csw="http://www.opengis.net/cat/csw/2.0.2" service="CSW" version="2.0.2"><csw:Delete><csw:Constraint version="1.1.0"><ogc:Filter xmlns:ogc="http://www.opengis.net/ogc"><ogc:PropertyIsLike><ogc:PropertyName>dc:title</ogc:PropertyName><ogc:Literal>%</ogc:Literal></ogc:PropertyIsLike></ogc:Filter></csw:Constraint></csw:Delete></csw:Transaction>`;
    const wrong = await post(tx, `Basic ${Buffer.from(`editor:${PASSWORD}x`).toString("base64")}`);
    expect(wrong.statusCode).toBe(401);
    expect(wrong.headers["www-authenticate"]).toContain("Basic");
    const wrongUser = await post(tx, `Basic ${Buffer.from(`admin:${PASSWORD}`).toString("base64")}`);
    expect(wrongUser.statusCode).toBe(401);
    expect((await reg.storage.search({ limit: 0, offset: 0 })).total).toBe(3);
    const locked = await tmpRegistry();
    const app2 = await buildServer(locked);
    try {
      const r = await app2.inject({ method: "POST", url: "/csw", headers: { "content-type": "application/xml" }, payload: tx });
      expect(r.statusCode).toBe(403);
      expect(r.body).toContain("Transactions are disabled");
    } finally {
      await app2.close();
      await locked.close();
    }
  });
});
