import { mkdtempSync, readFileSync } from "node:fs";
import { createServer } from "node:http";
import type { IncomingMessage, ServerResponse } from "node:http";
import type { AddressInfo } from "node:net";
import { tmpdir } from "node:os";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";
import { deflateSync } from "node:zlib";
import { requireEnv } from "@geowatch/testkit";
import { Registry, resolveConfig } from "../src/index.js";
import type { RegistryConfigInput, RegistryStorage } from "../src/index.js";
import { silentLogger } from "@geowatch/core";

export const FIXTURES = join(dirname(fileURLToPath(import.meta.url)), "fixtures");

const OGC_HINT = "Start the registry's OGC servers: bash .ci/servers/registry-ogc.sh start && source .servers/env/registry-ogc.env";
const PY_HINT = "Start MapProxy, pycsw and pygeoapi: bash .ci/servers/registry-py.sh start && source .servers/env/registry-py.env";
const KOOP_HINT = "Start Koop: bash .ci/servers/registry-koop.sh start && source .servers/env/registry-koop.env";

/** The real servers' URLs (a missing one fails the test with the command that starts it). */
export const env = {
  qgis: () => requireEnv("GEOWATCH_REGISTRY_QGIS_URL", OGC_HINT),
  mapserver: () => requireEnv("GEOWATCH_REGISTRY_MAPSERVER_URL", OGC_HINT),
  mapproxy: () => requireEnv("GEOWATCH_REGISTRY_MAPPROXY_URL", PY_HINT),
  pycsw: () => requireEnv("GEOWATCH_REGISTRY_PYCSW_URL", PY_HINT),
  records: () => requireEnv("GEOWATCH_REGISTRY_RECORDS_URL", PY_HINT),
  owslibPython: () => requireEnv("GEOWATCH_REGISTRY_OWSLIB_PYTHON", PY_HINT),
  koop: () => requireEnv("GEOWATCH_REGISTRY_KOOP_URL", KOOP_HINT),
};

export function tmpDir(): string {
  return mkdtempSync(join(tmpdir(), "registry-test-"));
}

/** A registry on a fresh SQLite file (or the given storage), loopback allowed unless the config says otherwise. */
export async function tmpRegistry(input: RegistryConfigInput = {}, storage?: RegistryStorage): Promise<Registry> {
  const dir = tmpDir();
  const config = resolveConfig({ urlPolicy: { allowPrivate: true }, ...input, storage: { path: join(dir, "registry.db"), ...input.storage }, jobs: { path: join(dir, "jobs.db"), ...input.jobs } }, dir, {});
  return new Registry(config, { logger: silentLogger, ...(storage ? { storage } : {}) }).init();
}

/** A PNG of w x h pixels (one colour), built here so fixture servers answer real images. */
export function png(w: number, h: number): Buffer {
  const crcTable = Array.from({ length: 256 }, (_, n) => {
    let c = n;
    for (let k = 0; k < 8; k++) c = c & 1 ? 0xedb88320 ^ (c >>> 1) : c >>> 1;
    return c >>> 0;
  });
  const crc = (b: Buffer) => {
    let c = 0xffffffff;
    for (const x of b) c = crcTable[(c ^ x) & 0xff]! ^ (c >>> 8);
    return (c ^ 0xffffffff) >>> 0;
  };
  const chunk = (type: string, data: Buffer) => {
    const len = Buffer.alloc(4);
    len.writeUInt32BE(data.length);
    const td = Buffer.concat([Buffer.from(type), data]);
    const c = Buffer.alloc(4);
    c.writeUInt32BE(crc(td));
    return Buffer.concat([len, td, c]);
  };
  const ihdr = Buffer.alloc(13);
  ihdr.writeUInt32BE(w, 0);
  ihdr.writeUInt32BE(h, 4);
  ihdr[8] = 8;
  ihdr[9] = 2;
  const raw = Buffer.alloc((w * 3 + 1) * h);
  for (let y = 0; y < h; y++) for (let x = 0; x < w; x++) raw.set([30, 120, 200], y * (w * 3 + 1) + 1 + x * 3);
  return Buffer.concat([Buffer.from([0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a]), chunk("IHDR", ihdr), chunk("IDAT", deflateSync(raw)), chunk("IEND", Buffer.alloc(0))]);
}

export type Route = (req: IncomingMessage, url: URL) => { status?: number; type?: string; body: string | Buffer; headers?: Record<string, string> } | undefined;

/** A loopback HTTP server answering from `route` (fixture documents, hostile documents); counts requests. */
export async function fixtureServer(route: Route): Promise<{ url: string; port: number; requests: string[]; close(): Promise<void> }> {
  const requests: string[] = [];
  const server = createServer((req: IncomingMessage, res: ServerResponse) => {
    const url = new URL(req.url ?? "/", "http://127.0.0.1");
    requests.push(`${url.pathname}${url.search}`);
    const r = route(req, url);
    if (!r) {
      res.writeHead(404, { "content-type": "text/plain" }).end("not found");
      return;
    }
    res.writeHead(r.status ?? 200, { "content-type": r.type ?? "application/json", ...r.headers }).end(r.body);
  });
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  const port = (server.address() as AddressInfo).port;
  return { url: `http://127.0.0.1:${port}`, port, requests, close: () => new Promise((resolve) => server.close(() => resolve())) };
}

/** The Esri fixture documents (test/fixtures/esri/README.md) on a loopback server, answering export/exportImage with PNGs. */
export function esriRoute(): Route {
  const doc = (name: string) => readFileSync(join(FIXTURES, "esri", name), "utf8");
  const docs: Record<string, string> = {
    "/arcgis/rest/services": "services.json",
    "/arcgis/rest/services/Imagery": "imagery-folder.json",
    "/arcgis/rest/services/Utilities": "utilities-folder.json",
    "/arcgis/rest/services/SampleWorldCities/MapServer": "SampleWorldCities-MapServer.json",
    "/arcgis/rest/services/SampleWorldCities/MapServer/layers": "SampleWorldCities-MapServer-layers.json",
    "/arcgis/rest/services/Census/MapServer": "Census-MapServer.json",
    "/arcgis/rest/services/Census/MapServer/layers": "Census-MapServer-layers.json",
    "/arcgis/rest/services/Imagery/Toronto/ImageServer": "Toronto-ImageServer.json",
  };
  return (_req, url) => {
    const p = url.pathname;
    if (docs[p]) return { body: doc(docs[p]) };
    if (p.endsWith("/export") || p.endsWith("/exportImage")) {
      const [w, h] = (url.searchParams.get("size") ?? "400,400").split(",").map(Number);
      return { type: "image/png", body: png(w!, h!) };
    }
    return undefined;
  };
}
