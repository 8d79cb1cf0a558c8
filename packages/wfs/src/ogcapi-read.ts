/**
 * OGC API Features items: `/collections/{id}/items?limit=&bbox=&datetime=` and then the `next` links the
 * server gives, each one through the URL policy like the first. `numberMatched` is the total when given.
 */
import { GeoWatchError } from "@geowatch/core";
import { ogcapiFilterParams } from "./filter.js";
import type { Feature } from "./gml-common.js";
import { BACKEND, redactUrl } from "./http.js";
import type { WfsHttp } from "./http.js";
import { checkResponse, featureCollectionOf, withIds } from "./reader.js";
import type { FeaturePage, LayerReader, ReadExtra } from "./reader.js";
import type { WfsReaderOptions } from "./reader-options.js";

/** Most pages one read follows, so a server whose `next` links never end cannot keep a read going forever. */
const MAX_PAGES = 100_000;

/** `base` + `/collections/{id}` + `rest`, keeping the base URL's query. */
function collectionUrl(base: string, id: string, rest: string): URL {
  const u = new URL(base);
  u.pathname = `${u.pathname.replace(/\/+$/, "")}/collections/${encodeURIComponent(id)}${rest}`;
  return u;
}

/** The `next` link of a page, resolved against the page's URL. */
function nextLink(links: Array<Record<string, unknown>> | undefined, pageUrl: string): string | undefined {
  const next = links?.find((l) => l.rel === "next" && typeof l.href === "string" && (l.type === undefined || /json/i.test(String(l.type))));
  return next ? new URL(String(next.href), pageUrl).toString() : undefined;
}

/** A reader of one collection's items. */
export function readItems(http: WfsHttp, o: WfsReaderOptions, collection = o.typeName): LayerReader {
  const pageSize = o.pageSize ?? 1000;
  const filterParams = ogcapiFilterParams(o.filter);
  if (o.bboxCrs !== undefined && !/^(EPSG:4326|CRS:?84)$/i.test(o.bboxCrs)) {
    throw new GeoWatchError("CONFIG", `bbox_crs ${o.bboxCrs}: the OGC API reader sends bbox in CRS84 (longitude, latitude) only`, { backend: BACKEND, path: "bbox_crs" });
  }

  function firstUrl(limit: number): string {
    const u = collectionUrl(http.baseUrl, collection, "/items");
    u.searchParams.set("f", "json");
    u.searchParams.set("limit", String(limit));
    if (o.bbox) u.searchParams.set("bbox", o.bbox.join(","));
    if (o.datetime) u.searchParams.set("datetime", o.datetime);
    for (const [k, v] of Object.entries(filterParams)) u.searchParams.set(k, v);
    return u.toString();
  }

  async function* pages(extra?: ReadExtra): AsyncGenerator<FeaturePage> {
    const limit = (extra?.limit ?? o.maxFeatures ?? Infinity) - (extra?.start ?? 0);
    let url: string | undefined = firstUrl(Math.min(pageSize, limit));
    const seen = new Set<string>();
    let got = 0;
    // A resumed read follows the links from the start and drops what was read before.
    let skip = extra?.start ?? 0;
    let firstIds: string | undefined;
    for (let n = 0; url !== undefined && got < limit; n++) {
      if (n >= MAX_PAGES || seen.has(url)) {
        throw new GeoWatchError("FETCH", `items of "${collection}": the next links of ${redactUrl(http.baseUrl)} loop or do not end (at ${redactUrl(url)})`, { backend: BACKEND });
      }
      seen.add(url);
      const res = await http.request({ url, accept: "application/geo+json, application/json" });
      checkResponse(res, "items");
      const page = featureCollectionOf(res, "items");
      let features: Feature[] = withIds(page.features, o.idField);
      // MapServer 8.0's items ignore `offset`: every next link answers the first page again.
      const ids = JSON.stringify(features.slice(0, 3).map((f) => [f.id, f.geometry]));
      if (n > 0 && features.length > 0 && ids === firstIds) {
        throw new GeoWatchError("UNSUPPORTED", `items of "${collection}" from ${redactUrl(http.baseUrl)}: the next page repeats the first (the server ignores its own paging); set page_size above the collection's size`, { backend: BACKEND });
      }
      if (n === 0) firstIds = ids;
      if (skip > 0) {
        const dropped = Math.min(skip, features.length);
        skip -= dropped;
        features = features.slice(dropped);
        if (features.length === 0 && dropped > 0) {
          url = nextLink(page.links, res.url);
          continue;
        }
      }
      if (got + features.length > limit) features = features.slice(0, limit - got);
      got += features.length;
      yield page.numberMatched !== undefined ? { features, total: page.numberMatched } : { features };
      url = features.length > 0 ? nextLink(page.links, res.url) : undefined;
    }
  }

  return {
    typeName: collection,
    pages,
    async hits() {
      const res = await http.request({ url: firstUrl(1), accept: "application/geo+json, application/json" });
      checkResponse(res, "items");
      return featureCollectionOf(res, "items").numberMatched;
    },
    async exists() {
      const u = collectionUrl(http.baseUrl, collection, "");
      u.searchParams.set("f", "json");
      const res = await http.request({ url: u.toString(), accept: "application/json" });
      if (res.status === 404) return false;
      checkResponse(res, "collection");
      return true;
    },
  };
}
