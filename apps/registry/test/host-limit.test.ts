import { createServer } from "node:http";
import type { AddressInfo } from "node:net";
import { join } from "node:path";
import { silentLogger } from "@geowatch/core";
import { describe, expect, it } from "vitest";
import { Registry, resolveConfig } from "../src/index.js";
import { png, tmpDir } from "./helpers.js";

describe("checks.per_host across workers", () => {
  it("two workers (separate registries on one storage) checking one host together keep to checks.per_host", async () => {
    let active = 0;
    let peak = 0;
    let served = 0;
    const layers = Array.from({ length: 10 }, (_, i) => `<Layer><Name>l${i}</Name><Title>l${i}</Title></Layer>`).join("");
    const server = createServer((req, res) => {
      const url = new URL(req.url ?? "/", "http://x");
      peak = Math.max(peak, ++active);
      setTimeout(() => {
        active--;
        served++;
        if (url.searchParams.get("REQUEST") === "GetCapabilities") {
          res.writeHead(200, { "content-type": "text/xml" }).end(`<WMS_Capabilities version="1.3.0"><Service><Title>t</Title></Service><Capability><Layer>${layers}</Layer></Capability></WMS_Capabilities>`);
        } else res.writeHead(200, { "content-type": "image/png" }).end(png(256, 256));
      }, 40);
    });
    await new Promise<void>((r) => server.listen(0, "127.0.0.1", r));
    const base = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
    const dir = tmpDir();
    const config = () => resolveConfig({ storage: { path: join(dir, "registry.db") }, jobs: { path: join(dir, "jobs.db") }, urlPolicy: { allowPrivate: true }, checks: { perHost: 2, concurrency: 16 } }, dir, {});
    const [a, b] = await Promise.all([new Registry(config(), { logger: silentLogger }).init(), new Registry(config(), { logger: silentLogger }).init()]);
    try {
      const [s1] = await a.add(`${base}/one`, { type: "OGC:WMS", enqueue: false });
      const [s2] = await a.add(`${base}/two`, { type: "OGC:WMS", enqueue: false });
      await a.apply(await a.harvestUpdate(s1!.id));
      await a.apply(await a.harvestUpdate(s2!.id));
      peak = 0;
      served = 0;
      const [u1, u2] = await Promise.all([a.checkUpdate(s1!.id), b.checkUpdate(s2!.id)]);
      for (const u of [u1, u2]) expect(u.kind === "checks" && u.checks.filter((c) => c.ok)).toHaveLength(11);
      expect(served).toBe(22);
      // Each worker alone allows 2; together, without the shared slots, they would reach 4.
      expect(peak).toBe(2);
    } finally {
      await a.close();
      await b.close();
      await new Promise<void>((r) => server.close(() => r()));
    }
  });
});
