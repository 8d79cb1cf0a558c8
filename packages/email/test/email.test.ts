import { execFileSync } from "node:child_process";
import { readFileSync } from "node:fs";
import { fileURLToPath } from "node:url";
import { afterEach, describe, expect, it } from "vitest";
import { Broker, isGeoWatchError, jsonCodec, memoryChannel, templateCodec } from "@geowatch/core";
import type { InRecord, Logger, MemoryChannel, OutRecord, Producer } from "@geowatch/core";
import { producerSuite, requireEnv } from "@geowatch/testkit";
import { emailBackend, emailProducer } from "../src/index.js";
import type { EmailProducerOptions } from "../src/index.js";

const HINT = "Start the SMTP test server: bash .ci/servers/smtp.sh start && source .servers/env/smtp.env";
const env = (name: string) => requireEnv(name, HINT);
const READER = fileURLToPath(new URL("./read-maildir.py", import.meta.url));

interface Delivered {
  file: string;
  mtime: number;
  from: string;
  to: string;
  rcpt_to: string;
  subject: string;
  content_type: string;
  text: string | null;
  html: string | null;
}

/** The mails in the server's Maildir, parsed by Python's email package, oldest first. */
function maildir(): Delivered[] {
  const out = execFileSync("python3", [READER, env("GEOWATCH_SMTP_MAILDIR")], { encoding: "utf8", maxBuffer: 64 << 20 });
  return (JSON.parse(out) as Delivered[]).sort((a, b) => a.mtime - b.mtime || a.file.localeCompare(b.file));
}

/** Mails whose envelope went to `address`, waiting until there are at least `n` (at most `timeoutMs`). */
async function mailsTo(address: string, n: number, timeoutMs = 20_000): Promise<Delivered[]> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const got = maildir().filter((m) => m.rcpt_to.toLowerCase().includes(address.toLowerCase()));
    if (got.length >= n || Date.now() > deadline) return got;
    await new Promise((r) => setTimeout(r, 100));
  }
}

const runId = () => `${Date.now().toString(36)}${Math.random().toString(36).slice(2, 7)}`;
const addr = (who: string) => `${who}-${runId()}@example.org`;

/** Connection options from the server's env: STARTTLS required, AUTH, the self-signed certificate as CA. */
function smtp(): Pick<EmailProducerOptions, "host" | "port" | "user" | "passwordFile" | "ca" | "from"> {
  return {
    host: env("GEOWATCH_SMTP_HOST"),
    port: Number(env("GEOWATCH_SMTP_PORT")),
    user: env("GEOWATCH_SMTP_USER"),
    passwordFile: env("GEOWATCH_SMTP_PASSWORD_FILE"),
    ca: env("GEOWATCH_SMTP_CA"),
    from: "GeoWatch <geowatch@example.org>",
  };
}

producerSuite("email", {
  capabilities: {},
  setup: async () => {
    const to = addr("suite");
    return {
      producer: () => emailProducer({ ...smtp(), to }),
      readBack: async (n, timeoutMs) => (await mailsTo(to, n, timeoutMs)).map((m) => (m.text ?? "").replace(/\r?\n$/, "")),
    };
  },
});

let producers: Producer[] = [];
afterEach(async () => {
  await Promise.all(producers.map(async (p) => p.close?.()));
  producers = [];
});

function producer(opts: Partial<EmailProducerOptions> = {}, logger?: Logger): Producer {
  const p = emailProducer({ ...smtp(), ...opts }, logger ? { logger } : {});
  producers.push(p);
  return p;
}

async function drain(ch: MemoryChannel): Promise<InRecord[]> {
  const c = ch.consumer();
  const got = await c.receive(1000, { waitMs: 0 });
  await c.ack?.(got);
  return got;
}

const rec = (value: string, extra: Partial<OutRecord> = {}): OutRecord => ({ value, ...extra });

describe("email producer", () => {
  it("mails through STARTTLS + AUTH with the template codec's subject and text; recipient from metadata.recipient", async () => {
    const codec = templateCodec({ format: "email", templates: { "create.layer": "Subject: New layer {{data.name}} ✓\n\nLayer {{data.name}} was created by {{data.user}}." } });
    const to = addr("alice");
    const event = { metadata: { actiontype: "create", targettype: "layer", recipient: to }, data: { name: "Straßen", user: "ana" } };
    const res = await producer().send([rec(String(codec.encode(event)), { metadata: event.metadata })]);
    expect(res[0]!.ok, JSON.stringify(res)).toBe(true);
    const [m] = await mailsTo(to, 1);
    expect(m, "the mail was delivered").toBeDefined();
    expect(m!.subject).toBe("New layer Straßen ✓");
    expect(m!.text?.trim()).toBe("Layer Straßen was created by ana.");
    expect(m!.from).toBe("GeoWatch <geowatch@example.org>");
    expect(m!.to).toBe(to);
  });

  it("inline templates give subject, text and HTML (escaped) from a JSON envelope; recipient from a header or options.to", async () => {
    const viaHeader = addr("bob");
    const viaConfig = addr("carol");
    const p = producer({
      to: viaConfig,
      subject: "{{metadata.actiontype}} {{metadata.featuretype}}",
      text: "{{data.name}} changed",
      html: { default: "<p>{{data.name}} changed</p>" },
    });
    const env1 = { metadata: { actiontype: "update", featuretype: "roads" }, data: { name: "A <b> & C" } };
    const res = await p.send([rec(JSON.stringify(env1), { headers: { recipient: viaHeader } }), rec(JSON.stringify(env1))]);
    expect(res.map((r) => r.ok)).toEqual([true, true]);
    const [b] = await mailsTo(viaHeader, 1);
    const [c] = await mailsTo(viaConfig, 1);
    for (const m of [b, c]) {
      expect(m?.subject).toBe("update roads");
      expect(m?.content_type).toBe("multipart/alternative");
      expect(m?.text?.trim()).toBe("A <b> & C changed");
      expect(m?.html?.trim()).toBe("<p>A &lt;b&gt; &amp; C changed</p>");
    }
  });

  it("an address the server rejects, a missing template field and a message with no recipient fail alone, not retryable", async () => {
    const ok = addr("dave");
    const p = producer({ subject: "{{data.title}}", text: "{{data.body}}" });
    const res = await p.send([
      rec(JSON.stringify({ metadata: { recipient: "nobody@rejected.invalid" }, data: { title: "t", body: "b" } }), { metadata: { recipient: "nobody@rejected.invalid" } }),
      rec(JSON.stringify({ metadata: { recipient: ok }, data: { body: "no title" } }), { metadata: { recipient: ok } }),
      rec(JSON.stringify({ metadata: {}, data: { title: "t", body: "b" } })),
      rec(JSON.stringify({ metadata: { recipient: ok }, data: { title: "fine", body: "delivered" } }), { metadata: { recipient: ok } }),
    ]);
    const [rejected, missing, norecipient, fine] = res;
    expect(fine!.ok).toBe(true);
    for (const r of [rejected, missing, norecipient]) {
      expect(r!.ok).toBe(false);
      if (!r!.ok) expect(r!.retryable).toBe(false);
    }
    if (!rejected!.ok) expect(rejected!.error.message).toMatch(/\[email\].*nobody@rejected\.invalid.*550/);
    if (!missing!.ok) expect(missing!.error.message).toMatch(/data\.title/);
    if (!norecipient!.ok) expect(norecipient!.error.message).toMatch(/no recipient/);
    const got = await mailsTo(ok, 1);
    expect(got.map((m) => m.subject)).toEqual(["fine"]);
  });

  it("digest: one send becomes mails of at most max_events per recipient, in arrival order", async () => {
    const a = addr("erin");
    const b = addr("frank");
    const p = producer({ subject: "{{metadata.actiontype}} {{data.n}}", text: "event {{data.n}}", digest: { maxEvents: 3 } });
    const ev = (to: string, n: number) => rec(JSON.stringify({ metadata: { actiontype: "enter", recipient: to }, data: { n } }), { metadata: { recipient: to } });
    const records = [ev(a, 1), ev(b, 1), ev(a, 2), ev(a, 3), ev(a, 4), ev(b, 2), ev(a, 5), ev(a, 6), ev(a, 7)];
    const res = await p.send(records);
    expect(res.every((r) => r.ok)).toBe(true);
    const toA = await mailsTo(a, 3);
    const toB = await mailsTo(b, 1);
    expect(toA).toHaveLength(3);
    expect(toB).toHaveLength(1);
    const events = (m: Delivered) => [...(m.text ?? "").matchAll(/^event (\d+)$/gm)].map((x) => Number(x[1]));
    expect(toA.map(events).flat().sort((x, y) => x - y)).toEqual([1, 2, 3, 4, 5, 6, 7]);
    expect(toA.map((m) => events(m).length).sort()).toEqual([1, 3, 3]);
    expect(toA.every((m) => events(m).join() === [...events(m)].sort((x, y) => x - y).join()), "events keep their order in a mail").toBe(true);
    expect(toB[0]!.subject).toBe("GeoWatch: 2 notifications");
    expect(events(toB[0]!)).toEqual([1, 2]);
    // One mail's result is every member's: the same message id.
    const ids = new Set(res.map((r) => (r.ok ? r.id : "")));
    expect(ids.size).toBe(4);
  });

  it("a wrong password fails connect with AUTH and the password appears in no error or log line", async () => {
    const lines: string[] = [];
    const log: Logger = { debug: () => {}, info: () => {}, warn: (m, f) => void lines.push(m + JSON.stringify(f)), error: (m, f) => void lines.push(m + JSON.stringify(f)) };
    const wrong = "not-the-password-8c1f";
    const { passwordFile: _unused, ...rest } = smtp();
    const p = emailProducer({ ...rest, password: wrong, to: addr("gina") }, { logger: log });
    producers.push(p);
    const err = await p.connect!().then(() => undefined, (e: unknown) => e);
    expect(isGeoWatchError(err, "AUTH"), String(err)).toBe(true);
    const res = await p.send([rec("x")]);
    expect(res[0]!.ok).toBe(false);
    if (!res[0]!.ok) expect(res[0]!.retryable, "a login problem is not the message's fault").toBe(true);
    expect(p.health!().ok).toBe(false);
    expect([String(err), ...res.map((r) => (r.ok ? "" : r.error.message)), ...lines].join("\n")).not.toContain(wrong);
    expect(readFileSync(env("GEOWATCH_SMTP_PASSWORD_FILE"), "utf8").trim()).not.toBe(wrong);
  });

  it("the server's certificate is verified: without its CA, STARTTLS fails and nothing is sent", async () => {
    const { ca: _ca, ...rest } = smtp();
    // Hide the CA's env fallback too, so Node's CA store is all the producer trusts.
    const p = emailProducer({ ...rest, to: addr("hank") }, { secret: (ref) => (ref === "GEOWATCH_SMTP_CA" ? undefined : process.env[ref]) });
    producers.push(p);
    const err = await p.connect!().then(() => undefined, (e: unknown) => e);
    expect(isGeoWatchError(err), String(err)).toBe(true);
    expect(String(err)).toMatch(/certificate|self.signed|STARTTLS/i);
  });

  it("an unreachable server is a retryable CONNECT failure", async () => {
    const p = emailProducer({ ...smtp(), port: 1, to: addr("ivy"), timeoutMs: 2000 });
    producers.push(p);
    const res = await p.send([rec("x")]);
    expect(res[0]!.ok).toBe(false);
    if (!res[0]!.ok) {
      expect(res[0]!.retryable).toBe(true);
      expect(isGeoWatchError(res[0]!.error, "CONNECT")).toBe(true);
    }
  });
});

describe("email through a Broker", () => {
  it("dead-letters a rejected address and a missing template field with the reason; the rest is mailed", async () => {
    const ok = addr("jane");
    const input = memoryChannel();
    const dlq = memoryChannel();
    const events = [
      { metadata: { actiontype: "create", targettype: "layer", recipient: ok }, data: { name: "roads" } },
      { metadata: { actiontype: "create", targettype: "layer", recipient: "x@rejected.invalid" }, data: { name: "lost" } },
      { metadata: { actiontype: "create", targettype: "layer", recipient: ok }, data: {} },
      { metadata: { actiontype: "create", targettype: "layer", recipient: ok }, data: { name: "rivers" } },
    ];
    await input.producer().send(events.map((e) => ({ value: JSON.stringify(e) })));
    const broker = new Broker({
      name: "mail",
      consumers: [{ name: "in", consumer: input.consumer(), codec: jsonCodec }],
      producers: [{ name: "email", producer: producer(), codec: templateCodec({ format: "email", templates: { "create.layer": "Subject: Layer {{data.name}}\n\n{{data.name}} was created" } }), maxTries: 2 }],
      deadLetter: { name: "dlq", producer: dlq.producer() },
      receiveWaitMs: 100,
      sleepPeriodMs: 100,
      retryBaseMs: 10,
    });
    await broker.run({ untilIdle: true });
    const got = await mailsTo(ok, 2);
    expect(got.map((m) => m.subject).sort()).toEqual(["Layer rivers", "Layer roads"]);
    const dead = (await drain(dlq)).map((r) => (JSON.parse(String(r.value)) as { reason: string }).reason);
    expect(dead).toHaveLength(2);
    expect(dead.some((r) => /rejected\.invalid.*550/.test(r)), dead.join("\n")).toBe(true);
    expect(dead.some((r) => /data\.name/.test(r)), dead.join("\n")).toBe(true);
    expect(input.size + input.inFlight, "every source record was acknowledged").toBe(0);
  });

  it("digest with linger_ms: events wait unacknowledged until their digest mail is sent, then are acknowledged", async () => {
    const to = addr("kim");
    const input = memoryChannel();
    await input.producer().send([1, 2, 3, 4].map((n) => ({ value: JSON.stringify({ metadata: { actiontype: "enter", recipient: to }, data: { n } }) })));
    const broker = new Broker({
      name: "digest",
      consumers: [{ name: "in", consumer: input.consumer(), codec: jsonCodec }],
      producers: [{ name: "email", producer: producer({ subject: "enter {{data.n}}", text: "event {{data.n}}", digest: { maxEvents: 10 } }), codec: jsonCodec, lingerMs: 4000 }],
      receiveWaitMs: 100,
      sleepPeriodMs: 100,
    });
    const started = Date.now();
    const running = broker.run();
    // Once the broker holds all four, the 4 s window is open: no mail yet, nothing acknowledged.
    while (input.inFlight < 4 && Date.now() - started < 3000) await new Promise((r) => setTimeout(r, 20));
    expect(input.inFlight, "the events are received and not acknowledged yet").toBe(4);
    expect(await mailsTo(to, 1, 0), "nothing mailed while the digest window is open").toHaveLength(0);
    const mails = await mailsTo(to, 1, 30_000);
    expect(Date.now() - started, "the digest waited for linger_ms").toBeGreaterThanOrEqual(3900);
    expect(mails).toHaveLength(1);
    expect(mails[0]!.subject).toBe("GeoWatch: 4 notifications");
    const deadline = Date.now() + 15_000;
    while (input.inFlight > 0 && Date.now() < deadline) await new Promise((r) => setTimeout(r, 50));
    expect(input.inFlight + input.size, "acknowledged once the digest was sent").toBe(0);
    await broker.stop();
    await running;
  });

  it("validates through the backend definition: nested digest keys in snake_case, unknown options listed", () => {
    const role = emailBackend.producer!;
    const ok = role.parse({ from: "a@b.c", digest: { max_events: 5 }, starttls: "required", password_file: "./pw" }, { role: "producer" }, { baseDir: "/etc/geowatch" });
    expect(ok.ok).toBe(true);
    if (ok.ok) expect(ok.options).toMatchObject({ digest: { maxEvents: 5 }, passwordFile: "/etc/geowatch/pw" });
    const bad = role.parse({ starttls: "maybe", digest: { max_events: 0 }, cc: "x" }, { role: "producer" });
    expect(bad.ok).toBe(false);
    if (!bad.ok) expect(bad.problems.map((p) => p.path).sort()).toEqual(["cc", "digest.max_events", "from", "starttls"]);
    expect(emailBackend.producer!.docs().find((d) => d.name === "password")?.env).toBe("GEOWATCH_SMTP_PASSWORD");
  });
});
