// The registry's browser UI: a search page (map + results with reliability) and a service page (uptime chart,
// layers, the layer drawn from its own WMS/WMTS). Bundled with Leaflet by scripts/build-ui.mjs; no CDN.
import L from "leaflet";

interface Doc {
  id: number;
  title: string;
  name: string;
  abstract: string;
  service_id: number | null;
  service_type: string;
  url: string;
  reliability: number | null;
  recent_reliability: number | null;
  min_x: number | null;
  min_y: number | null;
  max_x: number | null;
  max_y: number | null;
}

interface Check {
  at: number;
  ok: boolean;
  responseMs: number;
  message: string;
}

const app = document.getElementById("app")!;

function el<K extends keyof HTMLElementTagNameMap>(tag: K, attrs: Record<string, string> = {}, ...children: (Node | string)[]): HTMLElementTagNameMap[K] {
  const e = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs)) e.setAttribute(k, v);
  for (const c of children) e.append(c);
  return e;
}

function reliabilityBadge(r: number | null): HTMLElement {
  const cls = r === null ? "unknown" : r >= 90 ? "good" : r >= 50 ? "fair" : "bad";
  return el("span", { class: `rel ${cls}`, "data-reliability": r === null ? "" : String(r) }, r === null ? "not checked" : `${r}%`);
}

function baseMap(container: HTMLElement): L.Map {
  const map = L.map(container, { worldCopyJump: true }).setView([20, 0], 1);
  // No tile basemap (no outside network is assumed): a graticule gives orientation.
  for (let lon = -180; lon <= 180; lon += 30) L.polyline([[-85, lon], [85, lon]], { color: "#bbb", weight: 1 }).addTo(map);
  for (let lat = -60; lat <= 60; lat += 30) L.polyline([[lat, -180], [lat, 180]], { color: "#bbb", weight: 1 }).addTo(map);
  return map;
}

async function searchPage() {
  const form = el("form", { id: "search" });
  const input = el("input", { type: "search", name: "q", placeholder: "Search layers", id: "q" });
  const inMap = el("input", { type: "checkbox", id: "inmap" });
  form.append(input, el("label", {}, inMap, " in map extent"), el("button", { type: "submit" }, "Search"));
  const mapDiv = el("div", { id: "map" });
  const count = el("p", { id: "count" });
  const list = el("ol", { id: "results" });
  app.append(form, mapDiv, count, list);
  const map = baseMap(mapDiv);
  const boxes = L.layerGroup().addTo(map);
  const run = async () => {
    const p = new URLSearchParams({ "d.docs.limit": "50" });
    if (input.value.trim()) p.set("q.text", input.value.trim());
    if (inMap.checked) {
      const b = map.getBounds();
      const c = (v: number, lim: number) => Math.max(-lim, Math.min(lim, v)).toFixed(4);
      p.set("q.geo", `[${c(b.getSouth(), 90)},${c(b.getWest(), 180)} TO ${c(b.getNorth(), 90)},${c(b.getEast(), 180)}]`);
    }
    const res = await fetch(`/api/search?${p}`);
    const body = (await res.json()) as { "a.matchDocs": number; "d.docs": Doc[]; message?: string };
    list.replaceChildren();
    boxes.clearLayers();
    if (!res.ok) {
      count.textContent = body.message ?? `error ${res.status}`;
      return;
    }
    count.textContent = `${body["a.matchDocs"]} layers`;
    for (const d of body["d.docs"]) {
      const link = d.service_id ? el("a", { href: `/services/${d.service_id}#layer-${d.id}` }, d.title) : el("span", {}, d.title);
      list.append(el("li", { class: "result", "data-id": String(d.id) }, link, " ", el("small", {}, d.service_type), " ", reliabilityBadge(d.reliability)));
      if (d.min_x !== null) L.rectangle([[d.min_y!, d.min_x], [d.max_y!, d.max_x!]], { weight: 1 }).bindTooltip(d.title).addTo(boxes);
    }
  };
  form.addEventListener("submit", (e) => {
    e.preventDefault();
    void run();
  });
  await run();
}

function uptimeChart(checks: Check[]): SVGSVGElement {
  const ns = "http://www.w3.org/2000/svg";
  const w = 600;
  const h = 120;
  const svg = document.createElementNS(ns, "svg");
  svg.setAttribute("viewBox", `0 0 ${w} ${h}`);
  svg.setAttribute("id", "uptime");
  svg.setAttribute("role", "img");
  if (!checks.length) return svg;
  const t0 = checks[0]!.at;
  const t1 = Math.max(checks[checks.length - 1]!.at, t0 + 1);
  const maxMs = Math.max(...checks.map((c) => c.responseMs), 1);
  const bw = Math.max(2, w / checks.length - 1);
  let path = "";
  checks.forEach((c, i) => {
    const x = checks.length === 1 ? w / 2 : ((c.at - t0) / (t1 - t0)) * (w - bw);
    const bar = document.createElementNS(ns, "rect");
    bar.setAttribute("x", String(x));
    bar.setAttribute("y", String(h - 20));
    bar.setAttribute("width", String(bw));
    bar.setAttribute("height", "20");
    bar.setAttribute("class", c.ok ? "up" : "down");
    const title = document.createElementNS(ns, "title");
    title.textContent = `${new Date(c.at).toISOString()} ${c.ok ? "up" : "down"} ${Math.round(c.responseMs)} ms ${c.message}`;
    bar.append(title);
    svg.append(bar);
    const y = (h - 25) * (1 - c.responseMs / maxMs);
    path += `${i ? "L" : "M"}${x + bw / 2},${y}`;
  });
  const line = document.createElementNS(ns, "path");
  line.setAttribute("d", path);
  line.setAttribute("class", "latency");
  svg.append(line);
  return svg;
}

function drawLayer(map: L.Map, layer: { name: string; service_type: string; url: string; min_x: number | null; min_y: number | null; max_x: number | null; max_y: number | null }, extra: Record<string, unknown>): L.Layer | undefined {
  let tiles: L.Layer | undefined;
  if (layer.service_type === "OGC:WMS") {
    tiles = L.tileLayer.wms(String(extra.getMap ?? layer.url), { layers: layer.name, format: String(extra.format ?? "image/png"), transparent: true, version: String(extra.version ?? "1.3.0") });
  } else if (layer.service_type === "OGC:WMTS") {
    const template = extra.template
      ? String(extra.template).replace(/\{TileMatrixSet\}/gi, String(extra.matrixSet)).replace(/\{Style\}/gi, String(extra.style ?? "default")).replace(/\{TileMatrix\}/gi, "{z}").replace(/\{TileRow\}/gi, "{y}").replace(/\{TileCol\}/gi, "{x}")
      : `${String(extra.kvp ?? layer.url)}${String(extra.kvp ?? layer.url).includes("?") ? "&" : "?"}SERVICE=WMTS&REQUEST=GetTile&VERSION=1.0.0&LAYER=${encodeURIComponent(layer.name)}&STYLE=${encodeURIComponent(String(extra.style ?? "default"))}&FORMAT=${encodeURIComponent(String(extra.format ?? "image/png"))}&TILEMATRIXSET=${encodeURIComponent(String(extra.matrixSet))}&TILEMATRIX={z}&TILEROW={y}&TILECOL={x}`;
    tiles = L.tileLayer(template, { maxZoom: 18 });
  }
  tiles?.addTo(map);
  if (layer.min_x !== null) map.fitBounds([[layer.min_y!, layer.min_x], [layer.max_y!, layer.max_x!]]);
  return tiles;
}

async function servicePage() {
  const id = Number(location.pathname.split("/").pop());
  const res = await fetch(`/api/services/${id}`);
  if (!res.ok) {
    app.append(el("p", {}, `service ${id} not found`));
    return;
  }
  const { service, layers } = (await res.json()) as {
    service: { title: string; url: string; type: string; reliability: number | null; recentReliability: number | null; harvestError: string | null; monitored: boolean };
    layers: (Doc & { id: number })[];
  };
  const checks = ((await (await fetch(`/api/services/${id}/checks`)).json()) as { checks: Check[] }).checks;
  app.append(
    el("h1", {}, service.title || service.url),
    el("p", {}, el("code", {}, service.type), " ", el("a", { href: service.url }, service.url)),
    el("p", {}, "Reliability ", reliabilityBadge(service.reliability), " recent ", reliabilityBadge(service.recentReliability), service.monitored ? "" : " (unmonitored)"),
  );
  if (service.harvestError) app.append(el("p", { class: "error" }, `Last harvest failed: ${service.harvestError}`));
  app.append(el("h2", {}, "Uptime"), uptimeChart(checks), el("p", { id: "checks-count" }, `${checks.length} checks`));
  const mapDiv = el("div", { id: "map" });
  const list = el("ul", { id: "layers" });
  app.append(el("h2", {}, "Layers"), mapDiv, list);
  const map = baseMap(mapDiv);
  let current: L.Layer | undefined;
  const show = async (layerId: number) => {
    const d = (await (await fetch(`/api/layers/${layerId}`)).json()) as { layer: Doc; extra: Record<string, unknown> };
    if (current) map.removeLayer(current);
    current = drawLayer(map, d.layer, d.extra);
    for (const li of list.querySelectorAll("li")) li.classList.toggle("shown", li.dataset.id === String(layerId));
  };
  for (const l of layers) {
    const btn = el("button", { type: "button" }, "show");
    btn.addEventListener("click", () => void show(l.id));
    list.append(el("li", { "data-id": String(l.id), id: `layer-${l.id}` }, `${l.title} `, reliabilityBadge(l.reliability), " ", btn));
  }
  const wanted = Number(location.hash.replace("#layer-", "")) || layers[0]?.id;
  if (wanted) await show(wanted);
}

void (document.body.dataset.page === "service" ? servicePage() : searchPage());
