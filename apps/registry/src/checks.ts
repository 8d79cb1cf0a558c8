import { reasonOf } from "@geowatch/core";
import type { Fetcher } from "./harvest/fetch.js";
import { withParams } from "./harvest/fetch.js";
import { parseXml } from "./harvest/xml.js";
import { imageInfo } from "./image.js";
import type { BBox, Layer, Service } from "./storage/types.js";

export interface CheckOutcome {
  ok: boolean;
  responseMs: number;
  message: string;
}

const TILE = 256;

/** The capabilities (or service description) request of a service. */
export function capabilitiesUrl(s: Pick<Service, "url" | "type">): string {
  switch (s.type) {
    case "OGC:WMS":
      return withParams(s.url, { SERVICE: "WMS", REQUEST: "GetCapabilities" });
    case "OGC:WFS":
      return withParams(s.url, { SERVICE: "WFS", REQUEST: "GetCapabilities" });
    case "OGC:WMTS":
      return /\.xml$/i.test(new URL(s.url).pathname) ? s.url : withParams(s.url, { SERVICE: "WMTS", REQUEST: "GetCapabilities" });
    case "OGC:CSW":
      return withParams(s.url, { SERVICE: "CSW", REQUEST: "GetCapabilities", VERSION: "2.0.2" });
    case "OGC:API-Features":
    case "OGC:API-Records":
      return withParams(s.url.replace(/\/+$/, "") + "/collections", { f: "json" });
    case "OSGeo:TMS":
      return s.url;
    default:
      return withParams(s.url, { f: "json" });
  }
}

/** A bbox small enough to draw quickly, inside the layer's bbox (its centre quarter), or the world. */
function drawBox(b: BBox | null): BBox {
  if (!b) return [-180, -90, 180, 90];
  const [minx, miny, maxx, maxy] = b;
  const w = Math.max((maxx - minx) / 4, 1e-6);
  const h = Math.max((maxy - miny) / 4, 1e-6);
  const cx = (minx + maxx) / 2;
  const cy = (miny + maxy) / 2;
  return [cx - w, cy - h, cx + w, cy + h];
}

/** The request a layer check makes, and what the answer must be; undefined for records that cannot be checked. */
export function layerProbe(l: Layer): { url: string; expect: "image" | "json" | "xml" } | undefined {
  const x = l.extra as Record<string, string | number | null | undefined>;
  const b = drawBox(l.bbox);
  switch (l.type) {
    case "OGC:WMS": {
      const v = String(x.version || "1.3.0");
      const bbox = v === "1.3.0" ? [b[1], b[0], b[3], b[2]] : b; // EPSG:4326 in 1.3.0 is lat/lon
      return {
        url: withParams(String(x.getMap || l.url), {
          SERVICE: "WMS", REQUEST: "GetMap", VERSION: v, LAYERS: l.name, STYLES: "", FORMAT: String(x.format || "image/png"),
          WIDTH: String(TILE), HEIGHT: String(TILE), [v === "1.3.0" ? "CRS" : "SRS"]: "EPSG:4326", BBOX: bbox.join(","),
        }),
        expect: "image",
      };
    }
    case "OGC:WMTS": {
      if (x.template) {
        const url = String(x.template)
          .replace(/\{TileMatrixSet\}/gi, String(x.matrixSet))
          .replace(/\{TileMatrix\}/gi, String(x.matrix))
          .replace(/\{TileRow\}/gi, "0")
          .replace(/\{TileCol\}/gi, "0")
          .replace(/\{Style\}/gi, String(x.style ?? "default"));
        return { url, expect: "image" };
      }
      return {
        url: withParams(String(x.kvp || l.url), {
          SERVICE: "WMTS", REQUEST: "GetTile", VERSION: "1.0.0", LAYER: l.name, STYLE: String(x.style ?? "default"), FORMAT: String(x.format || "image/png"),
          TILEMATRIXSET: String(x.matrixSet), TILEMATRIX: String(x.matrix), TILEROW: "0", TILECOL: "0",
        }),
        expect: "image",
      };
    }
    case "OSGeo:TMS":
      return x.tileSet ? { url: `${String(x.tileSet).replace(/\/+$/, "")}/0/0.${String(x.extension || "png")}`, expect: "image" } : undefined;
    case "OGC:WFS": {
      const v = String(x.version || "2.0.0");
      return {
        url: withParams(l.url, { SERVICE: "WFS", REQUEST: "GetFeature", VERSION: v, [v.startsWith("2") ? "TYPENAMES" : "TYPENAME"]: l.name, [v.startsWith("2") ? "COUNT" : "MAXFEATURES"]: "1" }),
        expect: "xml",
      };
    }
    case "OGC:API-Features":
      return { url: withParams(String(x.items || `${l.url}/collections/${l.name}/items`), { limit: "1", f: "json" }), expect: "json" };
    case "ESRI:ArcGIS:MapServer":
      return {
        url: withParams(`${l.url}/export`, { bbox: b.join(","), bboxSR: "4326", size: `${TILE},${TILE}`, format: "png", layers: `show:${l.name}`, f: "image" }),
        expect: "image",
      };
    case "ESRI:ArcGIS:ImageServer":
      return { url: withParams(`${l.url}/exportImage`, { bbox: b.join(","), bboxSR: "4326", size: `${TILE},${TILE}`, format: "png", f: "image" }), expect: "image" };
    case "ESRI:ArcGIS:FeatureServer":
      return { url: withParams(`${l.url}/${l.name}/query`, { where: "1=1", resultRecordCount: "1", outFields: "*", f: "json" }), expect: "json" };
    default:
      return undefined;
  }
}

/** Requests `url` and judges the answer: HTTP 2xx, and an image of the asked type and size, or JSON / XML that is not an exception. */
export async function probe(fetcher: Fetcher, url: string, expect: "image" | "json" | "xml" | "capabilities", timeoutMs: number): Promise<CheckOutcome> {
  const started = performance.now();
  try {
    const r = await fetcher.get(url, { timeoutMs, maxBytes: 20 * 1024 * 1024 });
    const responseMs = r.ms;
    if (r.status < 200 || r.status >= 300) return { ok: false, responseMs, message: `HTTP ${r.status}: ${r.text().slice(0, 200).replace(/\s+/g, " ").trim()}` };
    if (expect === "image") {
      const info = imageInfo(r.body);
      if (!info) {
        const head = r.text().slice(0, 200).replace(/\s+/g, " ");
        return { ok: false, responseMs, message: `not an image (${r.contentType || "no content type"}): ${head}` };
      }
      if (!r.contentType.startsWith("image/")) return { ok: false, responseMs, message: `image served as ${r.contentType}` };
      if (info.width !== TILE || info.height !== TILE) return { ok: false, responseMs, message: `image is ${info.width}x${info.height}, asked ${TILE}x${TILE}` };
      return { ok: true, responseMs, message: `${info.type} ${info.width}x${info.height}` };
    }
    const body = r.text();
    if (expect === "json" || (expect === "capabilities" && body.trimStart().startsWith("{"))) {
      const j = JSON.parse(body) as Record<string, unknown>;
      if (j.error) return { ok: false, responseMs, message: `error: ${JSON.stringify(j.error).slice(0, 200)}` };
      return { ok: true, responseMs, message: `JSON, ${body.length} bytes` };
    }
    const doc = parseXml(body, "check response");
    const root = Object.keys(doc).find((k) => k !== "?xml") ?? "";
    if (/Exception/i.test(root)) return { ok: false, responseMs, message: `${root}: ${body.slice(0, 200).replace(/\s+/g, " ")}` };
    return { ok: true, responseMs, message: `${root}, ${body.length} bytes` };
  } catch (err) {
    return { ok: false, responseMs: performance.now() - started, message: reasonOf(err) };
  }
}

/**
 * Bounds concurrent requests per host (and overall), so checking thousands of layers never floods one server.
 * `run` waits for a free slot of the URL's host.
 */
export class HostLimiter {
  private readonly active = new Map<string, number>();
  private readonly waiting = new Map<string, (() => void)[]>();
  private total = 0;
  private readonly totalWaiting: (() => void)[] = [];
  /** Highest concurrency seen per host, for tests and metrics. */
  readonly peak = new Map<string, number>();

  constructor(
    readonly perHost: number,
    readonly overall = 32,
    /** Slots shared with other processes (the storage's host slots), so the per-host bound holds across workers. */
    private readonly shared?: (host: string) => Promise<() => Promise<void>>,
  ) {}

  async run<T>(url: string, fn: () => Promise<T>): Promise<T> {
    const host = new URL(url).host;
    while ((this.active.get(host) ?? 0) >= this.perHost) await new Promise<void>((r) => this.queue(this.waiting, host, r));
    this.active.set(host, (this.active.get(host) ?? 0) + 1);
    while (this.total >= this.overall) await new Promise<void>((r) => this.totalWaiting.push(r));
    this.total++;
    this.peak.set(host, Math.max(this.peak.get(host) ?? 0, this.active.get(host)!));
    let release: (() => Promise<void>) | undefined;
    try {
      if (this.shared) release = await this.shared(host);
      return await fn();
    } finally {
      await release?.().catch(() => undefined);
      this.total--;
      this.totalWaiting.shift()?.();
      this.active.set(host, this.active.get(host)! - 1);
      this.waiting.get(host)?.shift()?.();
    }
  }

  private queue(m: Map<string, (() => void)[]>, host: string, r: () => void) {
    const q = m.get(host) ?? [];
    q.push(r);
    m.set(host, q);
  }
}
