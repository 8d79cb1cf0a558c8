import { GeoWatchError, isGeoWatchError, payloadText, reasonOf, sleep, templateCodec } from "@geowatch/core";
import type { BackendHealth, Logger, Metadata, OutRecord, Producer, SendResult, TemplateCodec } from "@geowatch/core";
import { WebClient, ErrorCode, LogLevel } from "@slack/web-api";
import { DEFAULT_SLACK_API_URL, parseOptions, slackProducerSchema } from "./options.js";
import type { SlackProducerOptions } from "./options.js";

const BACKEND = "slack";

/** The two Web API calls the producer makes: what an injected client must provide. */
export interface SlackClient {
  auth: { test(): Promise<unknown> };
  chat: { postMessage(args: Record<string, unknown>): Promise<{ ok?: boolean; ts?: string; channel?: string; error?: string }> };
}

export interface SlackProducerDeps {
  logger?: Logger;
  /** Reads a secret (the token's env fallback); default process.env. */
  secret?: (ref: string) => string | undefined;
  /** A client to use instead of building one from the options. */
  client?: SlackClient;
}

/** Slack errors that no retry fixes: the message is dead-lettered with Slack's error. */
const REJECTED = new Set([
  "channel_not_found", "is_archived", "not_in_channel", "msg_too_long", "no_text", "invalid_blocks", "invalid_blocks_format",
  "too_many_attachments", "restricted_action", "restricted_action_read_only_channel", "restricted_action_thread_only_channel",
  "restricted_action_non_threadable_channel", "cannot_reply_to_message", "invalid_arguments", "invalid_arg_name", "invalid_array_arg",
  "invalid_charset", "invalid_form_data", "invalid_post_type", "missing_post_type", "channel_type_not_supported", "messages_tab_disabled",
  "invalid_metadata_format", "invalid_metadata_schema", "metadata_too_large", "duplicate_channel_not_found", "as_user_not_supported",
  "slack_connect_file_link_sharing_blocked", "message_limit_exceeded", "team_access_not_granted", "user_not_found",
]);

/** Slack errors that say Slack itself is failing for now: the sink counts as down, so no message is dead-lettered for it. */
const UNAVAILABLE = new Set(["internal_error", "fatal_error", "service_unavailable", "request_timeout"]);

/** Slack errors about the token or the app: every message would fail, so the sink is down until it is fixed. */
const AUTH = new Set([
  "not_authed", "invalid_auth", "account_inactive", "token_revoked", "token_expired", "no_permission", "missing_scope",
  "org_login_required", "ekm_access_denied", "not_allowed_token_type", "two_factor_setup_required", "access_denied",
]);

interface Post {
  record: OutRecord;
  channel: string;
  text: string;
  blocks?: unknown[];
  thread?: string;
}

/** One channel's queue: posts leave in order, at most `ratePerChannel` per second. */
interface ChannelQueue {
  tail: Promise<unknown>;
  nextAt: number;
}

/**
 * Posts every record with chat.postMessage. Records to one channel go out in order through that channel's
 * queue, paced to `ratePerChannel`; a 429 pauses the channel for its Retry-After and posts the same message
 * again, so nothing is lost or reordered. Results are per record: Slack's `ok: false` errors that no retry
 * fixes (an unknown channel) are rejected for the dead-letter sink, the rest retried by the broker.
 */
export function slackProducer(options: SlackProducerOptions, deps: SlackProducerDeps = {}): Producer {
  const o = parseOptions<SlackProducerOptions>(slackProducerSchema, options, "slack producer");
  const secret = deps.secret ?? ((ref: string) => process.env[ref]);
  const log = deps.logger;
  const intervalMs = 1000 / (o.ratePerChannel ?? 1);
  const threadBy = o.threadBy ?? "none";
  const maxThreads = o.maxThreads ?? 10_000;
  const channelTemplate = o.channel?.includes("{{") ? compile(o.channel, "channel") : undefined;
  const queues = new Map<string, ChannelQueue>();
  /** Thread key -> ts of the thread's first message; a Map keeps insertion order for LRU eviction. */
  const threads = new Map<string, string>();
  /** Records being posted: a retry of the same record (after a send timeout) joins the post instead of posting twice. */
  const inFlight = new WeakMap<OutRecord, Promise<SendResult>>();
  const closing = new AbortController();
  let client = deps.client;
  let health: BackendHealth = { ok: true };

  const getClient = (): SlackClient => {
    if (client) return client;
    const token = o.token ?? secret("GEOWATCH_SLACK_TOKEN");
    if (token === undefined || token === "") {
      throw new GeoWatchError("CONFIG", "no token: set options.token or GEOWATCH_SLACK_TOKEN", { backend: BACKEND, path: "token" });
    }
    const web = new WebClient(token, {
      slackApiUrl: o.apiUrl ?? secret("GEOWATCH_SLACK_API_URL") ?? DEFAULT_SLACK_API_URL,
      // Retries belong to the broker (per record, with backoff) and 429s to the channel queues below.
      retryConfig: { retries: 0 },
      rejectRateLimitedCalls: true,
      timeout: o.requestTimeoutMs ?? 10_000,
      allowAbsoluteUrls: false,
      logger: quietLogger(log),
      logLevel: LogLevel.WARN,
    });
    client = web as unknown as SlackClient;
    return client;
  };

  const channelOf = (r: OutRecord): string => {
    if (channelTemplate) return channelTemplate.render({ metadata: r.metadata ?? {}, data: null }).trim();
    const c = o.channel ?? r.topic ?? (typeof r.metadata?.recipient === "string" ? r.metadata.recipient : undefined);
    if (c === undefined || c === "") {
      throw new GeoWatchError("VALIDATE", "no channel: set options.channel or the node's topic, or give the message metadata.recipient", { backend: BACKEND });
    }
    return c;
  };

  const threadKey = (channel: string, meta: Metadata | undefined): string | undefined => {
    if (threadBy === "none") return undefined;
    const part = (f: "track" | "fence") => {
      const v = meta?.[f];
      return typeof v === "string" || typeof v === "number" ? String(v) : undefined;
    };
    const keys = threadBy === "track_fence" ? [part("track"), part("fence")] : [part(threadBy)];
    if (keys.some((k) => k === undefined)) return undefined;
    return JSON.stringify([channel, ...keys]);
  };

  const remember = (key: string, ts: string) => {
    threads.delete(key);
    threads.set(key, ts);
    if (threads.size > maxThreads) threads.delete(threads.keys().next().value!);
  };

  const queueOf = (channel: string): ChannelQueue => {
    let q = queues.get(channel);
    if (!q) queues.set(channel, (q = { tail: Promise.resolve(), nextAt: 0 }));
    return q;
  };

  /** Posts one message, waiting out 429s; resolves with its result. */
  const postOne = async (p: Post, q: ChannelQueue): Promise<SendResult> => {
    const c = getClient();
    const key = threadKey(p.channel, p.record.metadata);
    for (;;) {
      const wait = q.nextAt - Date.now();
      if (wait > 0) await sleep(wait, closing.signal);
      if (closing.signal.aborted) return { ok: false, error: new GeoWatchError("CLOSED", "producer closed", { backend: BACKEND }), retryable: true };
      q.nextAt = Date.now() + intervalMs;
      const thread = key !== undefined ? threads.get(key) : undefined;
      const args: Record<string, unknown> = { channel: p.channel, text: p.text };
      if (p.blocks) args.blocks = p.blocks;
      if (thread !== undefined) args.thread_ts = thread;
      try {
        const res = await c.chat.postMessage(args);
        health = { ok: true };
        if (key !== undefined && thread === undefined && typeof res.ts === "string") remember(key, res.ts);
        else if (key !== undefined && thread !== undefined) remember(key, thread);
        return res.ts !== undefined ? { ok: true, id: `${res.channel ?? p.channel}/${res.ts}` } : { ok: true };
      } catch (err) {
        const retryAfter = rateLimitWait(err);
        if (retryAfter !== undefined) {
          // The same message goes again after the pause, ahead of everything queued behind it.
          log?.warn("rate limited by Slack; pausing the channel", { channel: p.channel, retryAfterSec: retryAfter / 1000 });
          q.nextAt = Date.now() + retryAfter;
          continue;
        }
        const code = slackError(err);
        if (code === "thread_not_found" && key !== undefined && thread !== undefined) {
          threads.delete(key);
          continue;
        }
        return classify(err, code, p.channel);
      }
    }
  };

  const classify = (err: unknown, code: string | undefined, channel: string): SendResult => {
    if (code !== undefined && REJECTED.has(code)) {
      return { ok: false, retryable: false, error: new GeoWatchError("SEND", `Slack refused the message to "${channel}": ${code}`, { backend: BACKEND, cause: err }) };
    }
    if (code !== undefined && AUTH.has(code)) {
      health = { ok: false, error: `Slack refuses the token: ${code}` };
      return { ok: false, retryable: true, error: new GeoWatchError("AUTH", `Slack refuses the token: ${code}`, { backend: BACKEND, cause: err, retryable: true }) };
    }
    if (code !== undefined && UNAVAILABLE.has(code)) {
      return { ok: false, retryable: true, error: new GeoWatchError("CONNECT", `Slack is unavailable: ${code}`, { backend: BACKEND, cause: err, retryable: true }) };
    }
    if (code !== undefined) {
      return { ok: false, retryable: true, error: new GeoWatchError("SEND", `Slack answered ${code} for "${channel}"`, { backend: BACKEND, cause: err, retryable: true }) };
    }
    const e = err as { code?: unknown; statusCode?: unknown };
    if (e.code === ErrorCode.HTTPError) {
      // 5xx: Slack (or a proxy before it) is down for now, which the broker waits out as an outage.
      const down = typeof e.statusCode === "number" && e.statusCode >= 500;
      return { ok: false, retryable: true, error: new GeoWatchError(down ? "CONNECT" : "SEND", `Slack answered HTTP ${String(e.statusCode)}`, { backend: BACKEND, cause: err, retryable: true }) };
    }
    // No answer at all (refused, reset, timed out): the sink is unreachable.
    return { ok: false, retryable: true, error: new GeoWatchError("CONNECT", `Slack is unreachable: ${reasonOf(err)}`, { backend: BACKEND, cause: err, retryable: true }) };
  };

  const prepare = (r: OutRecord): Post | SendResult => {
    try {
      const channel = channelOf(r);
      const body = bodyOf(r, o.blocks ?? false);
      return { record: r, channel, ...body };
    } catch (err) {
      return { ok: false, retryable: false, error: err instanceof Error ? err : new Error(String(err)) };
    }
  };

  return {
    // At most 20 s of posts to one channel per send, well within the broker's default 30 s send timeout.
    capabilities: { batching: true, maxBatch: Math.max(1, Math.floor(20 * (o.ratePerChannel ?? 1))) },
    async connect() {
      try {
        await getClient().auth.test();
        health = { ok: true };
      } catch (err) {
        if (isGeoWatchError(err)) throw err;
        const code = slackError(err);
        if (code !== undefined && AUTH.has(code)) throw new GeoWatchError("AUTH", `Slack refuses the token: ${code}`, { backend: BACKEND, cause: err });
        throw new GeoWatchError("CONNECT", `cannot reach the Slack Web API: ${code ?? reasonOf(err)}`, { backend: BACKEND, cause: err, retryable: true });
      }
    },
    send(records: OutRecord[]): Promise<SendResult[]> {
      // Per channel: once a message fails retryably, the later ones of this send wait for the broker's retry
      // too, so the channel keeps its order.
      const blocked = new Map<string, GeoWatchError["code"]>();
      return Promise.all(
        records.map((r) => {
          const pending = inFlight.get(r);
          if (pending) return pending;
          const p = prepare(r);
          if (!("record" in p)) return Promise.resolve(p);
          const q = queueOf(p.channel);
          const run = q.tail.then(async (): Promise<SendResult> => {
            const cause = blocked.get(p.channel);
            if (cause !== undefined) {
              // The same code as the failure that holds it back, so an outage still reads as one to the broker.
              return { ok: false, retryable: true, error: new GeoWatchError(cause, `held back: an earlier message to "${p.channel}" failed and is retried first`, { backend: BACKEND, retryable: true }) };
            }
            const res = await postOne(p, q);
            if (!res.ok && res.retryable !== false) blocked.set(p.channel, isGeoWatchError(res.error) ? res.error.code : "SEND");
            return res;
          });
          q.tail = run;
          inFlight.set(r, run);
          void run.finally(() => inFlight.delete(r));
          return run;
        }),
      );
    },
    health: () => health,
    async close() {
      closing.abort();
      await Promise.allSettled([...queues.values()].map((q) => q.tail));
    },
  };
}

/** The text and blocks of a record: a JSON `{text, blocks}` (the template codec's `format: slack`) or plain text. */
function bodyOf(r: OutRecord, asSection: boolean): { text: string; blocks?: unknown[] } {
  const raw = payloadText(r.value);
  let text = raw;
  let blocks: unknown[] | undefined;
  if (raw.trimStart().startsWith("{")) {
    let parsed: unknown;
    try {
      parsed = JSON.parse(raw);
    } catch {
      parsed = undefined;
    }
    if (parsed !== null && typeof parsed === "object" && !Array.isArray(parsed) && ("text" in parsed || "blocks" in parsed)) {
      const v = parsed as { text?: unknown; blocks?: unknown };
      if (v.text !== undefined && typeof v.text !== "string") throw new GeoWatchError("VALIDATE", "payload field text must be a string", { backend: BACKEND });
      if (v.blocks !== undefined && !Array.isArray(v.blocks)) throw new GeoWatchError("VALIDATE", "payload field blocks must be an array of Block Kit blocks", { backend: BACKEND });
      text = v.text ?? "";
      blocks = v.blocks as unknown[] | undefined;
    }
  }
  if (blocks === undefined && asSection && text !== "") blocks = [{ type: "section", text: { type: "mrkdwn", text } }];
  if (text === "" && blocks === undefined) throw new GeoWatchError("VALIDATE", "empty message: no text and no blocks", { backend: BACKEND });
  return blocks === undefined ? { text } : { text, blocks };
}

/** A template over `{ metadata }` compiled with core's template codec; a broken one is a CONFIG error at startup. */
function compile(source: string, what: string): TemplateCodec {
  try {
    return templateCodec({ templates: { default: source } });
  } catch (err) {
    throw new GeoWatchError("CONFIG", `options.${what}: ${reasonOf(err)}`, { backend: BACKEND, cause: err, path: what });
  }
}

/** Slack's `error` code of a platform error (`ok: false`). */
function slackError(err: unknown): string | undefined {
  const e = err as { code?: unknown; data?: { error?: unknown } };
  return e?.code === ErrorCode.PlatformError && typeof e.data?.error === "string" ? e.data.error : undefined;
}

/** Ms to wait for a rate-limited call: Retry-After, or one second when a 429 came without it. */
function rateLimitWait(err: unknown): number | undefined {
  const e = err as { code?: unknown; retryAfter?: unknown; statusCode?: unknown };
  if (e?.code === ErrorCode.RateLimitedError) return Math.max(0, Number(e.retryAfter) || 0) * 1000 || 1000;
  if (e?.code === ErrorCode.HTTPError && e.statusCode === 429) return 1000;
  // The SDK's error for a 429 whose Retry-After it cannot read.
  if (err instanceof Error && /^Retry header did not contain a valid timeout/.test(err.message)) return 1000;
  return undefined;
}

/** The SDK's logger interface, passing only warnings and errors on (its debug lines are noise here). */
function quietLogger(log: Logger | undefined) {
  let level = LogLevel.WARN;
  const out = (fn: "warn" | "error") => (...msgs: unknown[]) => log?.[fn](`slack client: ${msgs.map((m) => (typeof m === "string" ? m : JSON.stringify(m))).join(" ")}`);
  return {
    debug: () => undefined,
    info: () => undefined,
    warn: out("warn"),
    error: out("error"),
    setLevel: (l: LogLevel) => {
      level = l;
    },
    getLevel: () => level,
    setName: () => undefined,
  };
}
