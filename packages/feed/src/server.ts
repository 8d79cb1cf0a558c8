/**
 * The feed HTTP server (Fastify): `/feeds/{user}.atom`, `.rss` and `.json` (JSON Feed 1.1), each behind the
 * user's token, with ETag / If-None-Match. A wrong token and an unknown user get the same 404, in the same
 * time, so the reply does not tell whether the user exists.
 */
import { createHash, randomBytes, timingSafeEqual } from "node:crypto";
import { readFileSync, statSync } from "node:fs";
import { resolve } from "node:path";
import Fastify from "fastify";
import type { FastifyInstance } from "fastify";
import { GeoWatchError, reasonOf } from "@geowatch/core";
import type { Logger } from "@geowatch/core";
import { openFeedDb } from "./db.js";
import type { FeedDb, StoredEntry } from "./db.js";
import { feedServerSchema, parseOptions } from "./options.js";
import type { FeedServerOptions } from "./options.js";
import { atom, rss } from "./xml.js";

export interface FeedServer {
  /** Base URL it answers at. */
  readonly url: string;
  readonly port: number;
  close(): Promise<void>;
}

const digest = (s: string) => createHash("sha256").update(s, "utf8").digest();

/** The users' tokens from a JSON file, reread when the file changes. */
function tokenSource(file: string): () => Map<string, Buffer> {
  let mtime = -1;
  let size = -1;
  let tokens = new Map<string, Buffer>();
  return () => {
    const st = statSync(file);
    if (st.mtimeMs === mtime && st.size === size) return tokens;
    let parsed: unknown;
    try {
      parsed = JSON.parse(readFileSync(file, "utf8"));
    } catch (cause) {
      throw new GeoWatchError("CONFIG", `tokens file ${JSON.stringify(file)} is not valid JSON`, { backend: "feed", cause });
    }
    if (parsed === null || typeof parsed !== "object" || Array.isArray(parsed)) throw new GeoWatchError("CONFIG", `tokens file ${JSON.stringify(file)} must hold a JSON object of user: token`, { backend: "feed" });
    const next = new Map<string, Buffer>();
    for (const [user, token] of Object.entries(parsed)) if (typeof token === "string" && token.length > 0) next.set(user, digest(token));
    tokens = next;
    mtime = st.mtimeMs;
    size = st.size;
    return tokens;
  };
}

const FORMATS = { atom: "application/atom+xml; charset=utf-8", rss: "application/rss+xml; charset=utf-8", json: "application/feed+json; charset=utf-8" } as const;
type Format = keyof typeof FORMATS;

/** The entity tags an If-None-Match header lists (weak ones compare by their opaque part, as RFC 9110 says for GET). */
function matches(header: string | undefined, etag: string): boolean {
  if (!header) return false;
  return header.split(",").some((t) => {
    const tag = t.trim();
    return tag === "*" || tag.replace(/^W\//, "") === etag;
  });
}

function jsonFeed(user: string, title: string, self: string, entries: StoredEntry[]): string {
  return JSON.stringify({
    version: "https://jsonfeed.org/version/1.1",
    title,
    feed_url: self,
    items: entries.map((e) => ({
      id: e.id,
      title: e.title,
      content_text: e.content,
      ...(e.summary ? { summary: e.summary } : {}),
      ...(e.link ? { url: e.link } : {}),
      date_published: e.updated,
      ...(e.categories ? { tags: e.categories } : {}),
      ...(e.geo ? { _geo: e.geo } : {}),
    })),
    _user: user,
  });
}

/**
 * Rendered documents by user, format and limit, reused while the user's entries do not change (readers poll
 * far more often than entries arrive). Bounded by total size; the least recently used goes first.
 */
class DocCache {
  private readonly docs = new Map<string, { version: string; body: string; etag: string }>();
  private bytes = 0;
  constructor(private readonly maxBytes: number) {}
  get(key: string, version: string) {
    const d = this.docs.get(key);
    if (!d || d.version !== version) return undefined;
    this.docs.delete(key);
    this.docs.set(key, d);
    return d;
  }
  set(key: string, doc: { version: string; body: string; etag: string }) {
    const old = this.docs.get(key);
    if (old) {
      this.bytes -= old.body.length;
      this.docs.delete(key);
    }
    this.docs.set(key, doc);
    this.bytes += doc.body.length;
    for (const [k, d] of this.docs) {
      if (this.bytes <= this.maxBytes) break;
      this.docs.delete(k);
      this.bytes -= d.body.length;
    }
  }
}

/** Builds the Fastify app over an open database (for tests and for embedding). */
export function feedApp(db: FeedDb, o: { tokensFile: string; title: string; publicUrl: () => string; logger?: Logger }): FastifyInstance {
  const tokens = tokenSource(o.tokensFile);
  // Compared against when the user is unknown, so both paths do the same work.
  const dummy = digest(randomBytes(32).toString("hex"));
  const cache = new DocCache(32 * 1024 * 1024);
  const app = Fastify({ logger: false });
  const notFound = { error: "not found" };
  app.setNotFoundHandler((_req, reply) => reply.code(404).send(notFound));
  // Schema errors say what is wrong with the request; anything else (an unreadable tokens file, a database
  // error) is logged and answered without details, which could name files.
  app.setErrorHandler((err: Error & { validation?: unknown; statusCode?: number }, _req, reply) => {
    if (err.validation !== undefined) return reply.code(400).send({ error: err.message });
    o.logger?.error("feed request failed", { error: reasonOf(err) });
    return reply.code(500).send({ error: "internal error" });
  });
  app.get<{ Params: { file: string }; Querystring: { token?: string; limit?: number } }>(
    "/feeds/:file",
    {
      schema: {
        params: { type: "object", required: ["file"], properties: { file: { type: "string", minLength: 6, maxLength: 300, pattern: "^[^/]+\\.(atom|rss|json)$" } } },
        querystring: {
          type: "object",
          additionalProperties: false,
          properties: { token: { type: "string", minLength: 1, maxLength: 512 }, limit: { type: "integer", minimum: 1, maximum: 1000, default: 100 } },
        },
      },
    },
    async (req, reply) => {
      const file = req.params.file;
      const dot = file.lastIndexOf(".");
      const user = file.slice(0, dot);
      const format = file.slice(dot + 1) as Format;
      const auth = req.headers.authorization;
      const given = req.query.token ?? (auth?.startsWith("Bearer ") ? auth.slice(7) : undefined);
      if (given === undefined) return reply.code(401).header("www-authenticate", 'Bearer realm="geowatch-feed"').send({ error: "token required (?token= or Authorization: Bearer)" });
      const expected = tokens().get(user);
      const ok = timingSafeEqual(digest(given), expected ?? dummy) && expected !== undefined;
      if (!ok) return reply.code(404).send(notFound);
      const limit = req.query.limit ?? 100;
      const key = `${user}\u0000${format}\u0000${limit}`;
      const version = db.version(user);
      let doc = cache.get(key, version);
      if (!doc) {
        const base = o.publicUrl().replace(/\/$/, "");
        const path = (f: Format) => `${base}/feeds/${encodeURIComponent(user)}.${f}`;
        const title = `${o.title}: ${user}`;
        const entries = db.entries(user, limit);
        const info = { user, title, self: path(format), alternate: path(format === "atom" ? "rss" : "atom") };
        const body = format === "atom" ? atom(info, entries) : format === "rss" ? rss(info, entries) : jsonFeed(user, title, info.self, entries);
        doc = { version, body, etag: `"${createHash("sha256").update(body).digest("base64url").slice(0, 27)}"` };
        cache.set(key, doc);
      }
      const { body, etag } = doc;
      reply.header("etag", etag).header("cache-control", "private, no-cache").header("vary", "Authorization");
      if (matches(req.headers["if-none-match"], etag)) return reply.code(304).send();
      return reply.type(FORMATS[format]).send(body);
    },
  );
  return app;
}

/** Serves the feeds a feed producer writes to `db` (this process or another one). */
export async function feedServer(options: FeedServerOptions, ctx: { logger?: Logger } = {}): Promise<FeedServer> {
  const o = parseOptions<FeedServerOptions>(feedServerSchema, options, "feed server");
  const db = openFeedDb(resolve(o.db));
  const host = o.host ?? "127.0.0.1";
  let url = "";
  const app = feedApp(db, { tokensFile: resolve(o.tokensFile), title: o.title ?? "GeoWatch notifications", publicUrl: () => o.publicUrl ?? url, logger: ctx.logger });
  try {
    await app.listen({ port: o.port ?? 0, host });
  } catch (cause) {
    db.close();
    throw new GeoWatchError("CONNECT", `feed server could not listen on ${host}:${o.port ?? 0}`, { backend: "feed", cause, retryable: true });
  }
  const addr = app.server.address();
  const port = typeof addr === "object" && addr ? addr.port : (o.port ?? 0);
  url = `http://${host.includes(":") ? `[${host}]` : host}:${port}`;
  let closed: Promise<void> | undefined;
  return {
    url,
    port,
    close: () =>
      (closed ??= app.close().finally(() => {
        db.close();
      })),
  };
}
