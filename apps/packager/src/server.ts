/**
 * The HTTP service (Fastify): ckanpackager's endpoints with request schemas. Bodies come as JSON, as
 * form fields, or as ckanpackager's own clients send them (a URL-quoted JSON document as a form body).
 * Every reply carries both the documented fields (`success`, `msg`) and the ones the original really sent
 * (`status`, `message`), so callers of either keep working. The secret is checked before the schema.
 */
import { createReadStream } from "node:fs";
import { stat } from "node:fs/promises";
import { join } from "node:path";
import Fastify from "fastify";
import type { FastifyInstance, FastifyReply, FastifyRequest } from "fastify";
import { GeoWatchError } from "@geowatch/core";
import { FORMATS } from "./jobs.js";
import type { JobData, JobKind } from "./jobs.js";
import type { PackagerService } from "./service.js";

type Body = Record<string, unknown>;

/** A successful reply in both shapes. */
export const ok = (msg: string, extra: Record<string, unknown> = {}) => ({ success: true, status: "success", msg, message: msg, ...extra });
/** A failed reply in both shapes. */
export const failed = (msg: string, extra: Record<string, unknown> = {}) => ({ success: false, status: "failed", msg, message: msg, error: msg, ...extra });

/** Parses a form body, or ckanpackager's quoted-JSON body (`urllib.quote(json.dumps({...}))`). */
export function parseFormBody(raw: string): Body {
  const t = raw.trim();
  if (t.startsWith("{") || /^%7B/i.test(t)) {
    const json = t.startsWith("{") ? t : decodeURIComponent(t);
    const v: unknown = JSON.parse(json);
    if (v === null || typeof v !== "object" || Array.isArray(v)) throw new Error("the body is not a JSON object");
    return v as Body;
  }
  const out: Body = {};
  for (const [k, v] of new URLSearchParams(t)) out[k] = v;
  return out;
}

const str = { type: "string" };
const email = { type: "string", minLength: 3, maxLength: 320, pattern: "^[^\\s@]+@[^\\s@]+$" };
const nonNeg = { type: "integer", minimum: 0 };
const filters = { anyOf: [{ type: "object" }, { type: "string" }] };
const secretOnly = { type: "object", required: ["secret"], properties: { secret: str } };
const datastoreBody = {
  type: "object",
  required: ["secret", "api_url", "resource_id", "email"],
  properties: {
    secret: str,
    api_url: { type: "string", minLength: 1 },
    resource_id: { type: "string", minLength: 1, maxLength: 200 },
    email,
    filters,
    q: str,
    offset: nonNeg,
    limit: { type: "integer", minimum: 1 },
    key: str,
    format: { type: "string", enum: [...FORMATS] },
  },
};
const urlBody = {
  type: "object",
  required: ["secret", "resource_id", "resource_url", "email"],
  properties: { secret: str, resource_id: { type: "string", minLength: 1, maxLength: 200 }, resource_url: { type: "string", minLength: 1 }, email, key: str },
};
const sourceBody = {
  type: "object",
  required: ["secret", "source", "resource_id", "email"],
  properties: {
    secret: str,
    source: { type: "string", minLength: 1, maxLength: 200 },
    resource_id: { type: "string", minLength: 1, maxLength: 500 },
    email,
    format: { type: "string", enum: [...FORMATS] },
  },
};
const listBody = {
  type: "object",
  required: ["secret"],
  properties: { secret: str, offset: nonNeg, limit: { type: "integer", minimum: 1, maximum: 10000 }, resource_id: str, email: str },
};

function parseFilters(v: unknown): Record<string, unknown> | undefined {
  if (v === undefined || v === "" || v === null) return undefined;
  let f = v;
  if (typeof v === "string") {
    try {
      f = JSON.parse(v);
    } catch {
      throw new GeoWatchError("VALIDATE", "filters is not valid JSON");
    }
  }
  if (f === null || typeof f !== "object" || Array.isArray(f)) throw new GeoWatchError("VALIDATE", "filters must be a JSON object");
  return Object.keys(f).length ? (f as Record<string, unknown>) : undefined;
}

const MESSAGE = {
  fast: "Your request has been queued; you will receive an email with a download link shortly.",
  slow: "Your request has been queued. It is a large dataset, so please be patient: you will receive an email with a download link when it is ready.",
};

export async function buildServer(svc: PackagerService): Promise<FastifyInstance> {
  const app = Fastify({ logger: false, bodyLimit: 1 << 20, ajv: { customOptions: { coerceTypes: "array", removeAdditional: false } } });

  app.removeContentTypeParser("text/plain");
  app.addContentTypeParser(["application/x-www-form-urlencoded", "text/plain"], { parseAs: "string" }, (_req, body, done) => {
    try {
      done(null, parseFormBody(body as string));
    } catch (err) {
      const e = new Error(`cannot parse the body: ${(err as Error).message}`) as Error & { statusCode: number };
      e.statusCode = 400;
      done(e, undefined);
    }
  });

  app.setErrorHandler((err: Error & { statusCode?: number; validation?: unknown }, _req, reply) => {
    if (err.validation) return reply.code(400).send(failed(`invalid request: ${err.message.replace(/^body\/?/, "")}`));
    if (err instanceof GeoWatchError && (err.code === "VALIDATE" || err.code === "URL_REFUSED")) return reply.code(400).send(failed(err.message));
    const code = err.statusCode && err.statusCode >= 400 && err.statusCode < 500 ? err.statusCode : 500;
    if (code === 500) svc.logger.error("request failed", { error: err.message });
    return reply.code(code).send(failed(code === 500 ? "internal error" : err.message));
  });

  // The secret is checked before the schema, so an unauthenticated caller learns nothing about the request shape.
  const guard = async (req: FastifyRequest, reply: FastifyReply) => {
    const body = (req.body ?? {}) as Body;
    if (!svc.checkSecret(body.secret)) return reply.code(403).send(failed("invalid or missing secret"));
  };

  // Pre-serialized per 200 ms snapshot: a hard-polled /status costs no query and no JSON.stringify per request.
  const status = async (_req: FastifyRequest, reply: FastifyReply) => reply.type("application/json; charset=utf-8").send(await svc.statusReply((v) => ok("ok", v)));
  app.post("/", { preValidation: guard, schema: { body: secretOnly } }, status);
  app.post("/status", { preValidation: guard, schema: { body: secretOnly } }, status);

  const packageRoute = (kind: JobKind) => async (req: FastifyRequest) => {
    const b = req.body as Body;
    const data: JobData =
      kind === "url"
        ? { kind, resourceId: String(b.resource_id), resourceUrl: String(b.resource_url) }
        : kind === "source"
          ? { kind, source: String(b.source), resourceId: String(b.resource_id), format: (b.format as JobData["format"]) ?? "csv" }
          : {
            kind,
            resourceId: String(b.resource_id),
            apiUrl: String(b.api_url),
            filters: parseFilters(b.filters),
            q: typeof b.q === "string" && b.q !== "" ? b.q : undefined,
            offset: typeof b.offset === "number" && b.offset > 0 ? b.offset : undefined,
            limit: typeof b.limit === "number" ? b.limit : undefined,
            format: kind === "datastore" ? ((b.format as JobData["format"]) ?? "csv") : undefined,
          };
    const res = await svc.enqueue(data, String(b.email), typeof b.key === "string" && b.key !== "" ? b.key : undefined);
    return ok(MESSAGE[res.queue], { job_id: res.id, queue: res.queue, rows: res.rows, cached: res.cached });
  };
  app.post("/package_datastore", { preValidation: guard, schema: { body: datastoreBody } }, packageRoute("datastore"));
  app.post("/package_dwc_archive", { preValidation: guard, schema: { body: datastoreBody } }, packageRoute("dwc"));
  app.post("/package_source", { preValidation: guard, schema: { body: sourceBody } }, packageRoute("source"));
  app.post("/package_url", { preValidation: guard, schema: { body: urlBody } }, packageRoute("url"));

  app.post("/clear_caches", { preValidation: guard, schema: { body: secretOnly } }, async () => {
    const n = await svc.clearCache();
    return ok(`cache cleared (${n} ZIP${n === 1 ? "" : "s"})`, { cleared: n });
  });

  app.post("/statistics", { preValidation: guard, schema: { body: { ...secretOnly, properties: { secret: str, resource_id: str } } } }, async (req) => {
    const b = req.body as Body;
    return ok("ok", { totals: await svc.db.totals(typeof b.resource_id === "string" && b.resource_id !== "" ? b.resource_id : undefined) });
  });
  const listRoute = (table: "requests" | "errors") => async (req: FastifyRequest) => {
    const b = req.body as Body;
    const entries = await svc.db.entries(table, {
      offset: (b.offset as number | undefined) ?? 0,
      limit: (b.limit as number | undefined) ?? 100,
      resourceId: typeof b.resource_id === "string" && b.resource_id !== "" ? b.resource_id : undefined,
      email: typeof b.email === "string" && b.email !== "" ? b.email : undefined,
    });
    return ok("ok", { [table]: entries });
  };
  app.post("/statistics/requests", { preValidation: guard, schema: { body: listBody } }, listRoute("requests"));
  app.post("/statistics/errors", { preValidation: guard, schema: { body: listBody } }, listRoute("errors"));

  app.post(
    "/job_status",
    { preValidation: guard, schema: { body: { type: "object", required: ["secret", "job_id"], properties: { secret: str, job_id: { type: "string", minLength: 1 } } } } },
    async (req, reply) => {
      const job = await svc.db.job(String((req.body as Body).job_id));
      if (!job) return reply.code(404).send(failed("no such job"));
      const unit = job.kind === "url" ? "bytes" : "rows";
      return ok(job.state, {
        job: {
          id: job.id,
          kind: job.kind,
          queue: job.queue,
          resource_id: job.resourceId,
          state: job.state,
          done: job.rowsDone,
          total: job.rowsTotal,
          unit,
          attempts: job.attempts,
          zip_file_name: job.zipName,
          error: job.error,
          created: job.created,
          updated: job.updated,
        },
      });
    },
  );

  app.get("/download/:name", async (req, reply) => {
    const { name } = req.params as { name: string };
    const q = req.query as { expires?: string; signature?: string };
    if (!/^[A-Za-z0-9._-]+\.zip$/.test(name) || !q.expires || !q.signature || !/^\d+$/.test(q.expires) || !/^[0-9a-f]+$/.test(q.signature)) {
      return reply.code(404).send(failed("not found"));
    }
    const check = svc.checkLink(name, Number(q.expires), q.signature);
    if (check === "bad") return reply.code(403).send(failed("invalid link"));
    if (check === "expired") return reply.code(410).send(failed("this link has expired; please request the data again"));
    const path = join(svc.config.storeDirectory, name);
    const st = await stat(path).catch(() => undefined);
    if (!st?.isFile()) return reply.code(410).send(failed("this file is no longer available; please request the data again"));
    return reply
      .header("content-type", "application/zip")
      .header("content-length", st.size)
      .header("content-disposition", `attachment; filename="${name}"`)
      .send(createReadStream(path));
  });

  return app;
}
