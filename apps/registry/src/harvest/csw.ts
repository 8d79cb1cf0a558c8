import { GeoWatchError } from "@geowatch/core";
import type { LayerInput } from "../storage/types.js";
import { dcRecordsIn, recordFromDc } from "../csw/records.js";
import { getText, withParams } from "./fetch.js";
import type { Harvested, HarvestContext } from "./types.js";
import { baseUrl } from "./types.js";
import { child, parseXml, text } from "./xml.js";
import type { XmlNode } from "./xml.js";

const PAGE = 50;

/** Harvests a CSW 2.0.2 catalogue's records (Dublin Core, full), paging with startPosition/nextRecord. */
export async function harvestCsw(url: string, ctx: HarvestContext): Promise<Harvested> {
  const base = baseUrl(url);
  const capsXml = await getText(ctx.fetcher, withParams(base, { SERVICE: "CSW", REQUEST: "GetCapabilities", VERSION: "2.0.2" }));
  const caps = parseXml(capsXml, "CSW capabilities");
  const root = caps.Capabilities as XmlNode | undefined;
  if (!root) throw new GeoWatchError("DECODE", "not a CSW capabilities document", { backend: "registry" });
  const ident = child(root, "ServiceIdentification") ?? {};
  const layers: LayerInput[] = [];
  const max = ctx.maxRecords ?? 10_000;
  let start = 1;
  for (;;) {
    const xml = await getText(
      ctx.fetcher,
      withParams(base, {
        SERVICE: "CSW", VERSION: "2.0.2", REQUEST: "GetRecords", typeNames: "csw:Record", elementSetName: "full", resultType: "results",
        outputSchema: "http://www.opengis.net/cat/csw/2.0.2", startPosition: String(start), maxRecords: String(Math.min(PAGE, max - layers.length)),
      }),
    );
    const doc = parseXml(xml, "CSW GetRecords response");
    const res = child(doc, "GetRecordsResponse", "SearchResults");
    if (!res) {
      const ex = child(doc, "ExceptionReport", "Exception", "ExceptionText");
      throw new GeoWatchError("DECODE", ex ? `CSW exception: ${text(ex)}` : "not a CSW GetRecordsResponse", { backend: "registry" });
    }
    const matched = Number(res["@numberOfRecordsMatched"] ?? 0);
    for (const r of dcRecordsIn(res)) {
      const rec = recordFromDc(r, base, ctx.owner);
      if (rec) layers.push({ ...rec, extra: { ...rec.extra, catalogue: base } });
    }
    ctx.progress?.(layers.length, matched);
    const next = Number(res["@nextRecord"] ?? 0);
    if (!next || next <= start || next > matched || layers.length >= max) break;
    start = next;
  }
  return { type: "OGC:CSW", url: base, title: text(ident.Title), abstract: text(ident.Abstract), version: "2.0.2", layers };
}
