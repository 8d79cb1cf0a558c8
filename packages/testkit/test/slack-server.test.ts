import { afterEach, describe, expect, it } from "vitest";
import { startSlackServer, type SlackServer } from "../src/slack-server.js";

const TOKEN = "xoxb-geowatch-test";
let server: SlackServer | undefined;

afterEach(async () => {
  await server?.close();
  server = undefined;
});

/** A call as Slack's clients make it: form-encoded, token in the Authorization header. */
async function call(s: SlackServer, method: string, fields: Record<string, string>, token: string | null = TOKEN) {
  const headers: Record<string, string> = { "content-type": "application/x-www-form-urlencoded" };
  if (token !== null) headers.authorization = `Bearer ${token}`;
  const res = await fetch(`${s.url}${method}`, { method: "POST", headers, body: new URLSearchParams(fields).toString() });
  return { status: res.status, retryAfter: res.headers.get("retry-after"), body: (await res.json()) as Record<string, unknown> };
}

describe("Slack Web API test server", () => {
  it("chat.postMessage posts to a channel by name or id and answers ts and channel id", async () => {
    server = await startSlackServer();
    const a = await call(server, "chat.postMessage", { channel: "#alerts", text: "one" });
    const b = await call(server, "chat.postMessage", { channel: "C0000ALERTS", text: "two" });
    expect(a.status).toBe(200);
    expect(a.body).toMatchObject({ ok: true, channel: "C0000ALERTS", message: { text: "one" } });
    expect(typeof a.body.ts).toBe("string");
    expect(b.body.ts).not.toBe(a.body.ts);
    expect(server.messagesIn("alerts").map((m) => m.text)).toEqual(["one", "two"]);
  });

  it("parses blocks sent as a JSON string field and refuses malformed ones with invalid_blocks", async () => {
    server = await startSlackServer();
    const blocks = [{ type: "section", text: { type: "mrkdwn", text: "*hi*" } }];
    const ok = await call(server, "chat.postMessage", { channel: "general", text: "hi", blocks: JSON.stringify(blocks) });
    expect(ok.body.ok).toBe(true);
    expect(server.messages[0]!.blocks).toEqual(blocks);
    const bad = await call(server, "chat.postMessage", { channel: "general", blocks: "[{not json" });
    expect(bad.body).toEqual({ ok: false, error: "invalid_blocks" });
  });

  it("accepts a JSON body too", async () => {
    server = await startSlackServer();
    const res = await fetch(`${server.url}chat.postMessage`, {
      method: "POST",
      headers: { "content-type": "application/json; charset=utf-8", authorization: `Bearer ${TOKEN}` },
      body: JSON.stringify({ channel: "general", text: "json body" }),
    });
    expect(((await res.json()) as { ok: boolean }).ok).toBe(true);
    expect(server.messages.map((m) => m.text)).toEqual(["json body"]);
  });

  it("answers not_authed without a token, invalid_auth with a wrong one, and accepts a token form field", async () => {
    server = await startSlackServer();
    expect((await call(server, "auth.test", {}, null)).body).toEqual({ ok: false, error: "not_authed" });
    expect((await call(server, "auth.test", {}, "xoxb-wrong")).body).toEqual({ ok: false, error: "invalid_auth" });
    expect((await call(server, "auth.test", { token: TOKEN }, null)).body).toMatchObject({ ok: true, team_id: "T0000TEST" });
    expect(server.messages).toHaveLength(0);
  });

  it("answers channel_not_found, is_archived, no_text, msg_too_long and thread_not_found", async () => {
    server = await startSlackServer({ channels: [{ id: "C1", name: "open" }, { id: "C2", name: "old", archived: true }], maxTextLength: 10 });
    expect((await call(server, "chat.postMessage", { channel: "#nowhere", text: "x" })).body.error).toBe("channel_not_found");
    expect((await call(server, "chat.postMessage", { channel: "old", text: "x" })).body.error).toBe("is_archived");
    expect((await call(server, "chat.postMessage", { channel: "open" })).body.error).toBe("no_text");
    expect((await call(server, "chat.postMessage", { channel: "open", text: "x".repeat(11) })).body.error).toBe("msg_too_long");
    expect((await call(server, "chat.postMessage", { channel: "open", text: "x", thread_ts: "1.000001" })).body.error).toBe("thread_not_found");
    expect(server.messages).toHaveLength(0);
    expect(server.calls.map((c) => c.result)).toEqual(["channel_not_found", "is_archived", "no_text", "msg_too_long", "thread_not_found"]);
  });

  it("threads a reply under an existing message", async () => {
    server = await startSlackServer();
    const parent = await call(server, "chat.postMessage", { channel: "general", text: "parent" });
    const reply = await call(server, "chat.postMessage", { channel: "general", text: "reply", thread_ts: String(parent.body.ts) });
    expect(reply.body).toMatchObject({ ok: true, message: { thread_ts: parent.body.ts } });
    expect(server.messages[1]!.thread_ts).toBe(parent.body.ts);
  });

  it("rate limits per channel with 429 and Retry-After, and lets the channel post again after it", async () => {
    server = await startSlackServer({ ratePerChannel: 2, burst: 1 });
    const first = await call(server, "chat.postMessage", { channel: "general", text: "1" });
    const second = await call(server, "chat.postMessage", { channel: "general", text: "2" });
    const other = await call(server, "chat.postMessage", { channel: "alerts", text: "other channel" });
    expect(first.body.ok).toBe(true);
    expect(second.status).toBe(429);
    expect(second.retryAfter).toBe("1");
    expect(second.body).toEqual({ ok: false, error: "ratelimited" });
    expect(other.body.ok, "the limit is per channel").toBe(true);
    await new Promise((r) => setTimeout(r, 600));
    expect((await call(server, "chat.postMessage", { channel: "general", text: "2 again" })).body.ok).toBe(true);
    expect(server.messagesIn("general").map((m) => m.text)).toEqual(["1", "2 again"]);
  });

  it("injects 429s and errors for the next calls only", async () => {
    server = await startSlackServer();
    server.rateLimitNext(1, 3, "chat.postMessage");
    server.failNext(1, "internal_error");
    server.failNext(1, "", { status: 503 });
    const limited = await call(server, "chat.postMessage", { channel: "general", text: "a" });
    expect(limited.status).toBe(429);
    expect(limited.retryAfter).toBe("3");
    expect((await call(server, "chat.postMessage", { channel: "general", text: "b" })).body).toEqual({ ok: false, error: "internal_error" });
    const res = await fetch(`${server.url}chat.postMessage`, { method: "POST", headers: { authorization: `Bearer ${TOKEN}` }, body: "channel=general&text=c" });
    expect(res.status).toBe(503);
    expect((await call(server, "chat.postMessage", { channel: "general", text: "d" })).body.ok).toBe(true);
    expect(server.messages.map((m) => m.text)).toEqual(["d"]);
  });

  it("waitForMessages resolves once enough messages arrived", async () => {
    server = await startSlackServer();
    const s = server;
    const waiting = s.waitForMessages(2, 5000);
    await call(s, "chat.postMessage", { channel: "general", text: "1" });
    await call(s, "chat.postMessage", { channel: "general", text: "2" });
    expect((await waiting).map((m) => m.text)).toEqual(["1", "2"]);
  });
});
