import { describe, expect, it } from "vitest";
import { parseWmsCapabilities } from "../src/index.js";
import { env } from "./helpers.js";

// The WMS layer scanner (src/harvest/wms-scan.ts) against fast-xml-parser, the parser of record: the same
// document read both ways must give the same harvest, errors included.
function both(xml: string): [unknown, unknown] {
  const run = (reference: boolean) => {
    try {
      return parseWmsCapabilities(xml, "http://wms.test/ows?SERVICE=WMS", "owner", { reference });
    } catch (err) {
      return `error: ${(err as Error).message}`;
    }
  };
  return [run(false), run(true)];
}

const EDGES = `<?xml version="1.0" encoding="UTF-8"?>
<!-- a comment before the root -->
<wms:WMS_Capabilities version="1.3.0" xmlns:wms="http://www.opengis.net/wms" xmlns:xlink="http://www.w3.org/1999/xlink">
  <wms:Service><wms:Name>WMS</wms:Name><wms:Title>Edges &amp; corners</wms:Title><wms:Abstract><![CDATA[<b>raw</b> &amp; CDATA]]></wms:Abstract></wms:Service>
  <wms:Capability>
    <wms:Request><wms:GetMap><wms:Format>image/jpeg</wms:Format><wms:Format>image/png</wms:Format>
      <wms:DCPType><wms:HTTP><wms:Get><wms:OnlineResource xlink:href="http://wms.test/ows?a=1&amp;b=2"/></wms:Get></wms:HTTP></wms:DCPType></wms:GetMap></wms:Request>
    <wms:Layer>
      <wms:Title>Root</wms:Title>
      <wms:CRS>EPSG:4326</wms:CRS><wms:CRS>CRS:84</wms:CRS>
      <wms:EX_GeographicBoundingBox><wms:westBoundLongitude>-180</wms:westBoundLongitude><wms:eastBoundLongitude>180</wms:eastBoundLongitude><wms:southBoundLatitude>-90</wms:southBoundLatitude><wms:northBoundLatitude>90</wms:northBoundLatitude></wms:EX_GeographicBoundingBox>
      <wms:Dimension name="TIME" units="ISO8601">2000-01-01/2010-01-01/P1Y</wms:Dimension>
      <wms:Layer queryable="1" note="a &gt; b and a > c">
        <wms:Name> roads </wms:Name>
        <wms:Name>second name, ignored</wms:Name>
        <wms:Title>Roads <!-- cut --> &amp; <![CDATA[ tracks &amp; <trails> ]]> of &#233;t&#xE9;</wms:Title>
        <wms:Abstract>Line one
          line two <wms:em>emphasis is not own text</wms:em> tail</wms:Abstract>
        <wms:KeywordList><wms:Keyword>roads</wms:Keyword><wms:Keyword vocabulary="x"> transport </wms:Keyword><wms:Keyword/><wms:Other>not a keyword</wms:Other></wms:KeywordList>
        <wms:KeywordList><wms:Keyword>second list, ignored</wms:Keyword></wms:KeywordList>
        <wms:CRS>EPSG:3857</wms:CRS><wms:CRS>EPSG:4326</wms:CRS>
        <wms:EX_GeographicBoundingBox/>
        <wms:Style><wms:Name>default</wms:Name><wms:Title>A style title, not the layer's</wms:Title></wms:Style>
        <?pi inside a layer?>
        <wms:Layer><wms:Name>roads:major</wms:Name><wms:Dimension name="elevation">0,100</wms:Dimension><wms:Dimension name="time">  </wms:Dimension><wms:Dimension name="time">2013-03-01</wms:Dimension></wms:Layer>
        <wms:Layer/>
      </wms:Layer>
      <wms:Layer>
        <wms:Name>lakes</wms:Name>
        <wms:EX_GeographicBoundingBox><wms:westBoundLongitude>10</wms:westBoundLongitude><wms:eastBoundLongitude>20</wms:eastBoundLongitude><wms:southBoundLatitude>40</wms:southBoundLatitude></wms:EX_GeographicBoundingBox>
        <wms:EX_GeographicBoundingBox><wms:westBoundLongitude>0</wms:westBoundLongitude><wms:eastBoundLongitude>1</wms:eastBoundLongitude><wms:southBoundLatitude>0</wms:southBoundLatitude><wms:northBoundLatitude>1</wms:northBoundLatitude></wms:EX_GeographicBoundingBox>
      </wms:Layer>
    </wms:Layer>
    <wms:Layer><wms:Name>second-top</wms:Name><wms:Title>A second top-level layer</wms:Title></wms:Layer>
  </wms:Capability>
  <wms:Capability><wms:Layer><wms:Name>in a second Capability, not read</wms:Name></wms:Layer></wms:Capability>
</wms:WMS_Capabilities>
<!-- a comment after it -->`;

const V111 = `<?xml version="1.0" encoding="ISO-8859-1" standalone="no" ?>
<!DOCTYPE WMT_MS_Capabilities SYSTEM "http://schemas.opengis.net/wms/1.1.1/WMS_MS_Capabilities.dtd"
 [
 <!ELEMENT VendorSpecificCapabilities EMPTY>
 ]>
<WMT_MS_Capabilities version="1.1.1">
<Service><Name>OGC:WMS</Name><Title>v111</Title></Service>
<Capability>
  <Request><GetMap><Format>image/png</Format><DCPType><HTTP><Get><OnlineResource xmlns:xlink="http://www.w3.org/1999/xlink" xlink:type="simple" xlink:href="http://wms.test/cgi?"/></Get></HTTP></DCPType></GetMap></Request>
  <Layer>
    <Name>top</Name><Title>Top</Title>
    <SRS>EPSG:4326 EPSG:900913</SRS>
    <LatLonBoundingBox minx="-10" miny="-20" maxx="30" maxy="40" />
    <Extent name="time" default="2001">2001/2003/P1Y</Extent>
    <Layer><Name>child</Name><SRS>EPSG:3857</SRS><LatLonBoundingBox/><LatLonBoundingBox minx="1" miny="2" maxx="3" maxy="4"/></Layer>
    <Layer><Name>dimensioned</Name><Dimension name="time" units="ISO8601"/><Extent name="time">2005-05-05</Extent></Layer>
  </Layer>
</Capability>
</WMT_MS_Capabilities>`;

function generated(n: number): string {
  const layers: string[] = [];
  for (let i = 0; i < n; i++) {
    const x = ((i * 37) % 340) - 170;
    const y = ((i * 11) % 160) - 80;
    layers.push(`<Layer queryable="1"><Name>layer_${i}</Name><Title>title &amp; ${i}</Title><Abstract>abstract ${i % 7}</Abstract><KeywordList><Keyword>k${i % 5}</Keyword><Keyword>k${i % 3}</Keyword></KeywordList><CRS>EPSG:4326</CRS><CRS>EPSG:3857</CRS><EX_GeographicBoundingBox><westBoundLongitude>${x}</westBoundLongitude><eastBoundLongitude>${x + 5}</eastBoundLongitude><southBoundLatitude>${y}</southBoundLatitude><northBoundLatitude>${y + 5}</northBoundLatitude></EX_GeographicBoundingBox><BoundingBox CRS="EPSG:4326" minx="${y}" miny="${x}" maxx="${y + 5}" maxy="${x + 5}"/><Dimension name="time" units="ISO8601" default="2013-06-01">${i % 2 ? "2013-01-01/2013-12-31/P1D" : "2014"}</Dimension><Style><Name>default</Name><Title>default</Title></Style></Layer>`);
  }
  return `<?xml version="1.0" encoding="UTF-8"?><WMS_Capabilities version="1.3.0" xmlns="http://www.opengis.net/wms" xmlns:xlink="http://www.w3.org/1999/xlink"><Service><Name>WMS</Name><Title>Generated</Title></Service><Capability><Request><GetMap><Format>image/png</Format><DCPType><HTTP><Get><OnlineResource xlink:href="http://wms.test/ows?"/></Get></HTTP></DCPType></GetMap></Request><Layer><Title>root</Title><CRS>EPSG:4326</CRS>${layers.join("")}</Layer></Capability></WMS_Capabilities>`;
}

describe("WMS layer scanner = fast-xml-parser", () => {
  it("edge cases: prefixes, CDATA, entities, comments, first-one-wins, empty and partial bounding boxes, inheritance, a second Capability", () => {
    const [fast, reference] = both(EDGES);
    expect(fast).toEqual(reference);
    const h = fast as ReturnType<typeof parseWmsCapabilities>;
    // Real values, so that both readers agreeing on nothing would fail too.
    expect(h.layers.map((l) => l.name)).toEqual(["roads", "roads:major", "lakes", "second-top"]);
    const [roads, major, lakes, second] = h.layers;
    expect(roads!.title).toBe("Roads  & tracks & <trails> of été");
    expect(roads!.abstract).toBe("Line one\n          line twotail");
    expect(roads!.keywords).toEqual(["roads", "transport"]);
    expect(roads!.crs).toEqual(["EPSG:4326", "CRS:84", "EPSG:3857"]);
    expect(roads!.bbox).toEqual([-180, -90, 180, 90]);
    expect(roads!.timeStart).toBe(Date.parse("2000-01-01T00:00:00Z"));
    expect(major!.timeStart).toBe(Date.parse("2013-03-01T00:00:00Z"));
    expect(lakes!.bbox).toEqual([10, 0, 20, 40]);
    expect(second!.bbox).toBeNull();
    expect(roads!.extra).toEqual({ getMap: "http://wms.test/ows?a=1&b=2", version: "1.3.0", format: "image/png" });
    expect(h.title).toBe("Edges & corners");
  });

  it("WMS 1.1.1 with a DOCTYPE: SRS lists, LatLonBoundingBox, Extent", () => {
    const [fast, reference] = both(V111);
    expect(fast).toEqual(reference);
    const h = fast as ReturnType<typeof parseWmsCapabilities>;
    expect(h.layers.map((l) => [l.name, l.bbox, l.crs, l.timeStart])).toEqual([
      ["top", [-10, -20, 30, 40], ["EPSG:4326", "EPSG:900913"], Date.parse("2001-01-01T00:00:00Z")],
      ["child", [-10, -20, 30, 40], ["EPSG:4326", "EPSG:900913", "EPSG:3857"], Date.parse("2001-01-01T00:00:00Z")],
      ["dimensioned", [-10, -20, 30, 40], ["EPSG:4326", "EPSG:900913"], Date.parse("2005-05-05T00:00:00Z")],
    ]);
  });

  it("a generated document of 2,000 layers", () => {
    const [fast, reference] = both(generated(2000));
    expect(fast).toEqual(reference);
    expect((fast as ReturnType<typeof parseWmsCapabilities>).layers).toHaveLength(2000);
  });

  it("refusals and errors are the same: exception reports, other roots, truncation, entities", () => {
    const docs = [
      `<?xml version="1.0"?><ServiceExceptionReport version="1.3.0"><ServiceException code="x">no such layer</ServiceException></ServiceExceptionReport>`,
      `<html><body>not WMS</body></html>`,
      `<WMS_Capabilities/>`,
      generated(3).slice(0, -40),
      `<!DOCTYPE x [<!ENTITY a "aaaa">]><WMS_Capabilities version="1.3.0"><Capability><Layer><Name>&a;</Name></Layer></Capability></WMS_Capabilities>`,
      `<WMS_Capabilities version="1.3.0"><Capability><Layer><Name>a</Name></Layer></Capability></WMS_Capabilities><second/>`,
    ];
    for (const d of docs) {
      const [fast, reference] = both(d);
      expect(fast).toEqual(reference);
      expect(String(fast)).toMatch(/^error: /);
    }
    // A root with attributes and nothing else is a service without layers, both ways.
    expect(both(`<WMS_Capabilities version="1.3.0"/>`)).toEqual([expect.objectContaining({ layers: [] }), expect.objectContaining({ layers: [] })]);
  });

  it("the capabilities of QGIS Server, MapServer and MapProxy (1.3.0 and 1.1.1)", async () => {
    const urls = [env.qgis(), env.mapserver(), `${env.mapproxy()}/service`];
    let layers = 0;
    for (const u of urls) {
      for (const v of ["1.3.0", "1.1.1"]) {
        const xml = await (await fetch(`${u}?SERVICE=WMS&REQUEST=GetCapabilities&VERSION=${v}`)).text();
        const [fast, reference] = both(xml);
        expect(fast).toEqual(reference);
        layers += (fast as ReturnType<typeof parseWmsCapabilities>).layers.length;
      }
    }
    expect(layers).toBeGreaterThanOrEqual(6);
  });
});
