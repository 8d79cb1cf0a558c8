import { existsSync, readFileSync } from "node:fs";
import { dirname, join, normalize } from "node:path";
import { fileURLToPath } from "node:url";
import { GeoWatchError, isGeoWatchError, reasonOf } from "@geowatch/core";
import Fastify from "fastify";
import type { FastifyInstance, FastifyReply, FastifyRequest } from "fastify";
import { basicAuth } from "../auth.js";
import { handleCsw } from "../csw/server.js";
import type { Registry } from "../registry.js";
import { hypermapDoc, parseSearchParams, searchResponse } from "../search.js";
import { SERVICE_TYPES } from "../storage/types.js";
import type { ServiceType } from "../storage/types.js";
import { pageHtml } from "../ui/page.js";

declare module "fastify" {
  interface FastifyInstance {
    registry: Registry;
    publicUrl: string;
  }
}

const idParams = { type: "object", required: ["id"], properties: { id: { type: "integer", minimum: 1 } } } as const;

function sendError(reply: FastifyReply, err: unknown) {
  if (isGeoWatchError(err)) {
    const status = err.code === "NOT_FOUND" ? 404 : err.code === "URL_REFUSED" ? 403 : err.code === "VALIDATE" || err.code === "CONFIG" ? 400 : 500;
    return reply.code(status).send({ error: err.code, message: err.message.replace(/^\[geowatch\] (\[registry\] )?/, ""), ...(err.path ? { path: err.path } : {}) });
  }
  return reply.code(500).send({ error: "INTERNAL", message: reasonOf(err) });
}

function requireAdmin(req: FastifyRequest, reply: FastifyReply): boolean {
  const r = basicAuth(req.headers.authorization, req.server.registry.config.csw);
  if (r === "ok") return true;
  if (r === "disabled") void reply.code(403).send({ error: "AUTH", message: "changes are disabled: no admin password is configured (csw.password)" });
  else void reply.code(401).header("www-authenticate", 'Basic realm="geowatch-registry"').send({ error: "AUTH", message: "valid credentials needed" });
  return false;
}

async function searchRoutes(app: FastifyInstance) {
  const handler = async (req: FastifyRequest, reply: FastifyReply) => {
    const started = performance.now();
    try {
      const { query, facets } = parseSearchParams(req.query as Record<string, string>);
      const r = await app.registry.storage.search(query, facets);
      return searchResponse(r, performance.now() - started);
    } catch (err) {
      return sendError(reply, err);
    }
  };
  // Hypermap's parameter names have dots; every one is a string, checked by parseSearchParams.
  const schema = { querystring: { type: "object", additionalProperties: { type: "string", maxLength: 2000 } } };
  app.get("/api/search", { schema }, handler);
  app.get("/registry/api/search", { schema }, handler);
}

async function serviceRoutes(app: FastifyInstance) {
  const reg = app.registry;
  app.get("/api/services", async () => ({ services: await reg.storage.listServices() }));
  app.get("/api/services/:id", { schema: { params: idParams } }, async (req, reply) => {
    const s = await reg.storage.getService((req.params as { id: number }).id);
    if (!s) return reply.code(404).send({ error: "NOT_FOUND", message: "no such service" });
    const layers = await reg.storage.listLayers(s.id);
    return { service: s, layers: layers.map((l) => hypermapDoc(l, s.title)) };
  });
  app.get("/api/services/:id/checks", { schema: { params: idParams, querystring: { type: "object", properties: { limit: { type: "integer", minimum: 1, maximum: 10000, default: 500 }, layer: { type: "integer", minimum: 1 } } } } }, async (req) => {
    const { id } = req.params as { id: number };
    const q = req.query as { limit: number; layer?: number };
    return { checks: await reg.storage.listChecks({ serviceId: id, layerId: q.layer ?? null }, q.limit) };
  });
  app.get("/api/layers/:id", { schema: { params: idParams } }, async (req, reply) => {
    const l = await reg.storage.getLayer((req.params as { id: number }).id);
    if (!l) return reply.code(404).send({ error: "NOT_FOUND", message: "no such layer" });
    return { layer: hypermapDoc(l), extra: l.extra, checks: l.serviceId ? await reg.storage.listChecks({ serviceId: l.serviceId, layerId: l.id }, 500) : [] };
  });
  app.post(
    "/api/services",
    {
      schema: {
        body: {
          type: "object",
          required: ["url"],
          additionalProperties: false,
          properties: { url: { type: "string", minLength: 8, maxLength: 2000 }, type: { type: "string", enum: [...SERVICE_TYPES] }, owner: { type: "string", maxLength: 200 } },
        },
      },
    },
    async (req, reply) => {
      if (!requireAdmin(req, reply)) return reply;
      const b = req.body as { url: string; type?: ServiceType; owner?: string };
      try {
        const services = await reg.add(b.url, { ...(b.type ? { type: b.type } : {}), ...(b.owner ? { owner: b.owner } : {}) });
        return reply.code(202).send({ services, queued: services.length });
      } catch (err) {
        return sendError(reply, err);
      }
    },
  );
  for (const kind of ["harvest", "check"] as const) {
    app.post(`/api/services/:id/${kind}`, { schema: { params: idParams } }, async (req, reply) => {
      if (!requireAdmin(req, reply)) return reply;
      const { id } = req.params as { id: number };
      if (!(await reg.storage.getService(id))) return reply.code(404).send({ error: "NOT_FOUND", message: "no such service" });
      await reg.enqueue([{ kind, serviceId: id }]);
      return reply.code(202).send({ queued: 1 });
    });
  }
  app.put(
    "/api/services/:id/monitored",
    { schema: { params: idParams, body: { type: "object", required: ["monitored"], additionalProperties: false, properties: { monitored: { type: "boolean" } } } } },
    async (req, reply) => {
      if (!requireAdmin(req, reply)) return reply;
      await reg.storage.setMonitored({ serviceId: (req.params as { id: number }).id }, (req.body as { monitored: boolean }).monitored);
      return { ok: true };
    },
  );
}

async function cswRoutes(app: FastifyInstance) {
  app.addContentTypeParser(["application/xml", "text/xml", "text/plain"], { parseAs: "string", bodyLimit: 5 * 1024 * 1024 }, (_req, body, done) => done(null, body));
  const handler = async (req: FastifyRequest, reply: FastifyReply) => {
    const r = await handleCsw(
      {
        method: req.method === "POST" ? "POST" : "GET",
        query: req.query as Record<string, string>,
        ...(typeof req.body === "string" ? { body: req.body } : {}),
        ...(req.headers.authorization ? { authorization: req.headers.authorization } : {}),
      },
      { storage: app.registry.storage, url: `${app.publicUrl}/csw`, auth: app.registry.config.csw },
    );
    return reply.code(r.status).headers(r.headers).send(r.body);
  };
  const schema = { querystring: { type: "object", additionalProperties: { type: "string", maxLength: 100_000 } } };
  app.get("/csw", { schema }, handler);
  app.post("/csw", { schema }, handler);
}

/** Where the built UI bundle lives: dist/ui next to this module once built. */
function uiDir(): string | undefined {
  const here = dirname(fileURLToPath(import.meta.url));
  for (const d of [join(here, "ui"), join(here, "..", "ui"), join(here, "..", "..", "dist", "ui")]) if (existsSync(join(d, "app.js"))) return d;
  return undefined;
}

const MIME: Record<string, string> = { ".js": "text/javascript; charset=utf-8", ".css": "text/css; charset=utf-8", ".png": "image/png", ".map": "application/json" };

async function uiRoutes(app: FastifyInstance) {
  const dir = uiDir();
  app.get("/", async (_req, reply) => reply.type("text/html; charset=utf-8").send(pageHtml("search")));
  app.get("/services/:id", { schema: { params: idParams } }, async (_req, reply) => reply.type("text/html; charset=utf-8").send(pageHtml("service")));
  app.get("/ui/*", async (req, reply) => {
    if (!dir) return reply.code(404).send("UI bundle not built (pnpm build)");
    const rel = normalize((req.params as { "*": string })["*"]).replace(/^(\.\.[/\\])+/, "");
    const file = join(dir, rel);
    if (!file.startsWith(dir) || !existsSync(file)) return reply.code(404).send("not found");
    const ext = file.slice(file.lastIndexOf("."));
    return reply.type(MIME[ext] ?? "application/octet-stream").header("cache-control", "max-age=300").send(readFileSync(file));
  });
}

/** The HTTP app: Search API, services API, CSW and the UI; each a plugin, the registry decorated once. */
export async function buildServer(registry: Registry, opts: { publicUrl?: string; logger?: boolean } = {}): Promise<FastifyInstance> {
  const app = Fastify({ logger: opts.logger ?? false, bodyLimit: 5 * 1024 * 1024 });
  app.decorate("registry", registry);
  app.decorate("publicUrl", (opts.publicUrl ?? registry.config.http.publicUrl ?? `http://${registry.config.http.host}:${registry.config.http.port}`).replace(/\/+$/, ""));
  app.setErrorHandler((err, _req, reply) => {
    const e = err as { validation?: unknown; statusCode?: number; message: string };
    if (e.validation) return reply.code(400).send({ error: "VALIDATE", message: e.message });
    if (e.statusCode && e.statusCode < 500) return reply.code(e.statusCode).send({ error: "REQUEST", message: e.message });
    return sendError(reply, err instanceof GeoWatchError ? err : new GeoWatchError("STORE", reasonOf(err), { backend: "registry", cause: err }));
  });
  app.get("/health", async () => ({ ok: true }));
  app.get("/ready", async (_req, reply) => {
    try {
      await registry.storage.search({ limit: 0, offset: 0 });
      return { ok: true, ...registry.stats() };
    } catch (err) {
      return reply.code(503).send({ ok: false, error: reasonOf(err) });
    }
  });
  await app.register(searchRoutes);
  await app.register(serviceRoutes);
  await app.register(cswRoutes);
  await app.register(uiRoutes);
  return app;
}
