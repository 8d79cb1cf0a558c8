/**
 * A local HTTP server that speaks the part of the Slack Web API a notifier uses, as Slack documents it:
 * `POST /api/<method>` with form-encoded or JSON bodies, the token in `Authorization: Bearer` (or a
 * `token` form field), HTTP 200 with `{ ok: false, error }` for API errors, and HTTP 429 with a
 * `Retry-After` header (seconds) when a channel is rate limited. Point a client at it with
 * `slackApiUrl: server.url` (for `@slack/web-api`). It keeps every accepted message for assertions.
 */
import { createServer } from "node:http";
import type { IncomingMessage, Server, ServerResponse } from "node:http";
import type { AddressInfo } from "node:net";

export interface SlackChannel {
  /** A channel id as Slack gives them: `C0123ABCD`. */
  id: string;
  /** The name without `#`. */
  name: string;
  /** Archived channels refuse posts with `is_archived`. */
  archived?: boolean;
}

export interface SlackServerOptions {
  /** Tokens the server accepts. Default: `["xoxb-geowatch-test"]`. */
  tokens?: string[];
  /** Channels that exist. Default: `general` (C0000GENERAL) and `alerts` (C0000ALERTS). */
  channels?: SlackChannel[];
  /**
   * Messages a channel accepts per second before it answers 429, like Slack's "about one message per
   * second per channel" (with a burst of `burst`). Default: Infinity (no limit).
   */
  ratePerChannel?: number;
  /** Messages a channel accepts at once before the rate applies. Default 1. */
  burst?: number;
  /** Longest `text` in characters (Slack: 40,000; longer is `msg_too_long`). Default 40000. */
  maxTextLength?: number;
}

/** A message the server accepted. */
export interface SlackPostedMessage {
  /** The channel id it went to. */
  channel: string;
  /** The channel as the request named it. */
  requested: string;
  ts: string;
  text?: string;
  /** Parsed Block Kit blocks. */
  blocks?: unknown[];
  thread_ts?: string;
  /** Every field of the request body as received (form fields are strings). */
  body: Record<string, unknown>;
  /** The token it was posted with. */
  token: string;
}

/** One API call as received, accepted or not. */
export interface SlackCall {
  method: string;
  status: number;
  /** `ok` or the error code answered. */
  result: string;
  at: number;
  channel?: string;
}

export interface SlackServer {
  /** Base URL ending in `/api/`: pass it as `slackApiUrl`. */
  readonly url: string;
  readonly port: number;
  /** Accepted messages, in the order they were accepted. */
  readonly messages: SlackPostedMessage[];
  /** Every call, in arrival order. */
  readonly calls: SlackCall[];
  /** The next `count` calls of `method` (any method when omitted) answer 429 with `Retry-After: retryAfterSec`. */
  rateLimitNext(count: number, retryAfterSec: number, method?: string): void;
  /** The next `count` calls of `method` answer `{ ok: false, error }` (or an HTTP `status` without a JSON body). */
  failNext(count: number, error: string, opts?: { method?: string; status?: number }): void;
  /** Messages accepted in one channel (by id or name), in order. */
  messagesIn(channel: string): SlackPostedMessage[];
  /** Waits until at least `n` messages were accepted, at most `timeoutMs`; returns them all. */
  waitForMessages(n: number, timeoutMs: number): Promise<SlackPostedMessage[]>;
  /** Forgets messages, calls, injected faults and rate-limit state. */
  reset(): void;
  close(): Promise<void>;
}

const DEFAULT_CHANNELS: SlackChannel[] = [
  { id: "C0000GENERAL", name: "general" },
  { id: "C0000ALERTS", name: "alerts" },
];

interface Fault {
  method: string | undefined;
  count: number;
  error?: string;
  status?: number;
  retryAfterSec?: number;
}

/** Starts a Slack Web API server on 127.0.0.1 (`port` 0 picks a free one). */
export async function startSlackServer(options: SlackServerOptions = {}, port = 0): Promise<SlackServer> {
  const tokens = new Set(options.tokens ?? ["xoxb-geowatch-test"]);
  const channels = options.channels ?? DEFAULT_CHANNELS;
  const rate = options.ratePerChannel ?? Infinity;
  const burst = Math.max(1, options.burst ?? 1);
  const maxText = options.maxTextLength ?? 40_000;
  const messages: SlackPostedMessage[] = [];
  const calls: SlackCall[] = [];
  let faults: Fault[] = [];
  /** Token bucket per channel id: tokens left and when it was last filled. */
  let buckets = new Map<string, { tokens: number; at: number }>();
  let tsCounter = 0;
  const waiters = new Set<() => void>();

  const findChannel = (ref: string): SlackChannel | undefined => {
    const name = ref.startsWith("#") ? ref.slice(1) : ref;
    return channels.find((c) => c.id === ref || c.name === name);
  };

  const takeFault = (method: string): Fault | undefined => {
    const f = faults.find((x) => x.count > 0 && (x.method === undefined || x.method === method));
    if (!f) return undefined;
    f.count--;
    faults = faults.filter((x) => x.count > 0);
    return f;
  };

  /** Seconds until the channel may post again, or 0 when it may post now (and the post is counted). */
  const throttle = (channel: string): number => {
    if (rate === Infinity) return 0;
    const now = Date.now();
    const b = buckets.get(channel) ?? { tokens: burst, at: now };
    b.tokens = Math.min(burst, b.tokens + ((now - b.at) / 1000) * rate);
    b.at = now;
    buckets.set(channel, b);
    if (b.tokens >= 1) {
      b.tokens -= 1;
      return 0;
    }
    return Math.max(1, Math.ceil((1 - b.tokens) / rate));
  };

  const send = (res: ServerResponse, status: number, body: Record<string, unknown>, headers: Record<string, string> = {}) => {
    res.writeHead(status, { "content-type": "application/json; charset=utf-8", ...headers });
    res.end(JSON.stringify(body));
  };

  const handle = async (req: IncomingMessage, res: ServerResponse): Promise<void> => {
    const url = new URL(req.url ?? "/", "http://127.0.0.1");
    const m = /^\/api\/([A-Za-z.]+)$/.exec(url.pathname);
    const method = m?.[1] ?? "";
    const record = (status: number, result: string, channel?: string) => {
      const c: SlackCall = { method, status, result, at: Date.now() };
      if (channel !== undefined) c.channel = channel;
      calls.push(c);
    };
    if (!m) {
      record(404, "unknown_method");
      send(res, 404, { ok: false, error: "unknown_method" });
      return;
    }
    const body = await readBody(req);
    if (body === undefined) {
      record(200, "invalid_form_data");
      send(res, 200, { ok: false, error: "invalid_form_data" });
      return;
    }
    for (const [k, v] of url.searchParams) if (!(k in body)) body[k] = v;

    const fault = takeFault(method);
    if (fault?.retryAfterSec !== undefined) {
      record(429, "ratelimited");
      send(res, 429, { ok: false, error: "ratelimited" }, { "retry-after": String(fault.retryAfterSec) });
      return;
    }
    if (fault?.status !== undefined) {
      record(fault.status, fault.error ?? `http_${fault.status}`);
      res.writeHead(fault.status, { "content-type": "text/plain" });
      res.end(fault.error ?? "");
      return;
    }

    const auth = req.headers.authorization;
    const token = auth?.startsWith("Bearer ") ? auth.slice(7).trim() : typeof body.token === "string" ? body.token : "";
    if (token === "") return void (record(200, "not_authed"), send(res, 200, { ok: false, error: "not_authed" }));
    if (!tokens.has(token)) return void (record(200, "invalid_auth"), send(res, 200, { ok: false, error: "invalid_auth" }));
    if (fault?.error !== undefined) return void (record(200, fault.error), send(res, 200, { ok: false, error: fault.error }));

    if (method === "api.test") return void (record(200, "ok"), send(res, 200, { ok: true, args: body }));
    if (method === "auth.test") {
      record(200, "ok");
      send(res, 200, { ok: true, url: "https://geowatch-test.slack.com/", team: "GeoWatch Test", user: "geowatch", team_id: "T0000TEST", user_id: "U0000BOT", bot_id: "B0000BOT" });
      return;
    }
    if (method !== "chat.postMessage") return void (record(200, "unknown_method"), send(res, 200, { ok: false, error: "unknown_method" }));

    const requested = typeof body.channel === "string" ? body.channel : "";
    if (requested === "") return void (record(200, "channel_not_found"), send(res, 200, { ok: false, error: "channel_not_found" }));
    const channel = findChannel(requested);
    if (!channel) return void (record(200, "channel_not_found", requested), send(res, 200, { ok: false, error: "channel_not_found" }));
    if (channel.archived) return void (record(200, "is_archived", channel.id), send(res, 200, { ok: false, error: "is_archived" }));

    let blocks: unknown[] | undefined;
    if (body.blocks !== undefined && body.blocks !== "") {
      const parsed = typeof body.blocks === "string" ? tryJson(body.blocks) : body.blocks;
      if (!Array.isArray(parsed) || !parsed.every((b) => b !== null && typeof b === "object" && typeof (b as { type?: unknown }).type === "string")) {
        return void (record(200, "invalid_blocks", channel.id), send(res, 200, { ok: false, error: "invalid_blocks" }));
      }
      blocks = parsed;
    }
    const text = typeof body.text === "string" ? body.text : undefined;
    if ((text === undefined || text === "") && blocks === undefined && body.attachments === undefined) {
      return void (record(200, "no_text", channel.id), send(res, 200, { ok: false, error: "no_text" }));
    }
    if (text !== undefined && text.length > maxText) return void (record(200, "msg_too_long", channel.id), send(res, 200, { ok: false, error: "msg_too_long" }));
    const threadTs = typeof body.thread_ts === "string" && body.thread_ts !== "" ? body.thread_ts : undefined;
    if (threadTs !== undefined && !messages.some((x) => x.channel === channel.id && x.ts === threadTs)) {
      return void (record(200, "thread_not_found", channel.id), send(res, 200, { ok: false, error: "thread_not_found" }));
    }

    const wait = throttle(channel.id);
    if (wait > 0) {
      record(429, "ratelimited", channel.id);
      send(res, 429, { ok: false, error: "ratelimited" }, { "retry-after": String(wait) });
      return;
    }

    const ts = `${Math.floor(Date.now() / 1000)}.${String(++tsCounter).padStart(6, "0")}`;
    const msg: SlackPostedMessage = { channel: channel.id, requested, ts, body, token };
    if (text !== undefined) msg.text = text;
    if (blocks !== undefined) msg.blocks = blocks;
    if (threadTs !== undefined) msg.thread_ts = threadTs;
    messages.push(msg);
    record(200, "ok", channel.id);
    for (const w of waiters) w();
    const message: Record<string, unknown> = { type: "message", user: "U0000BOT", bot_id: "B0000BOT", ts };
    if (text !== undefined) message.text = text;
    if (blocks !== undefined) message.blocks = blocks;
    if (threadTs !== undefined) message.thread_ts = threadTs;
    send(res, 200, { ok: true, channel: channel.id, ts, message });
  };

  const server: Server = createServer((req, res) => {
    handle(req, res).catch((err: unknown) => {
      if (!res.headersSent) send(res, 500, { ok: false, error: "internal_error", detail: String(err) });
      else res.destroy();
    });
  });
  await new Promise<void>((resolve, reject) => {
    server.once("error", reject);
    server.listen(port, "127.0.0.1", () => resolve());
  });
  const actualPort = (server.address() as AddressInfo).port;

  return {
    url: `http://127.0.0.1:${actualPort}/api/`,
    port: actualPort,
    messages,
    calls,
    rateLimitNext: (count, retryAfterSec, method) => void faults.push({ method, count, retryAfterSec }),
    failNext: (count, error, opts = {}) => {
      const f: Fault = { method: opts.method, count, error };
      if (opts.status !== undefined) f.status = opts.status;
      faults.push(f);
    },
    messagesIn: (ref) => {
      const c = findChannel(ref);
      return messages.filter((x) => x.channel === (c?.id ?? ref));
    },
    waitForMessages: (n, timeoutMs) =>
      new Promise((resolve) => {
        const done = () => {
          if (messages.length < n) return;
          clearTimeout(timer);
          waiters.delete(done);
          resolve([...messages]);
        };
        const timer = setTimeout(() => {
          waiters.delete(done);
          resolve([...messages]);
        }, timeoutMs);
        waiters.add(done);
        done();
      }),
    reset: () => {
      messages.length = 0;
      calls.length = 0;
      faults = [];
      buckets = new Map();
    },
    close: () =>
      new Promise<void>((resolve) => {
        server.closeAllConnections();
        server.close(() => resolve());
      }),
  };
}

/** The request body as fields: form-encoded (what Slack's clients send) or JSON; undefined when unreadable. */
async function readBody(req: IncomingMessage): Promise<Record<string, unknown> | undefined> {
  const chunks: Buffer[] = [];
  for await (const c of req) chunks.push(c as Buffer);
  const text = Buffer.concat(chunks).toString("utf8");
  if (text === "") return {};
  const type = req.headers["content-type"] ?? "";
  if (type.includes("application/json")) {
    const v = tryJson(text);
    return v !== null && typeof v === "object" && !Array.isArray(v) ? (v as Record<string, unknown>) : undefined;
  }
  const out: Record<string, unknown> = {};
  for (const [k, v] of new URLSearchParams(text)) out[k] = v;
  return out;
}

function tryJson(text: string): unknown {
  try {
    return JSON.parse(text) as unknown;
  } catch {
    return undefined;
  }
}
