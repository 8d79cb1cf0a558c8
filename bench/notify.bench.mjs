// Notification throughput of the Slack and email producers inside the Broker, against their SDKs used directly,
// on the same servers and in the same run:
//   slack raw        @slack/web-api chat.postMessage, one sequential queue per channel, channels in parallel
//   slack broker     memory channel -> template codec (format: slack) -> Broker -> slackProducer  target >= 0.7x raw
//   email raw        nodemailer pooled transport (2 connections, STARTTLS + AUTH), every mail sent at once
//   email broker     memory channel -> template codec (format: email) -> Broker -> emailProducer  target >= 0.7x raw
//   email digest     the same events as digests (max_events 50, 10 recipients): events/s and mails sent
// Slack: the testkit's local Slack Web API server (no rate limit; the producer's rate_per_channel set high so the
// pacing is not what is measured). Email: aiosmtpd from .ci/servers/smtp.sh (bash .ci/servers/smtp.sh start &&
// source .servers/env/smtp.env). Every run checks that every message arrived. Runs alternate; medians reported.
// Env: BENCH_SLACK_N (default 3000), BENCH_EMAIL_N (default 400), BENCH_RUNS (default 3), BENCH_CHANNELS (default 20).
import { createRequire } from "node:module";
import { readFileSync, readdirSync } from "node:fs";
import { dirname, join } from "node:path";
import { fileURLToPath, pathToFileURL } from "node:url";

const here = dirname(fileURLToPath(import.meta.url));
const root = join(here, "..");
const load = (pkg) => import(pathToFileURL(join(root, "packages", pkg, "dist", "index.js")).href);
const sdk = async (pkg, name) => import(pathToFileURL(createRequire(join(root, "packages", pkg, "package.json")).resolve(name)).href);

const { Broker, memoryChannel, templateCodec, jsonCodec } = await load("core");
const { startSlackServer } = await load("testkit");
const { slackProducer } = await load("slack");
const { emailProducer } = await load("email");
const { WebClient } = await sdk("slack", "@slack/web-api");
const nodemailer = (await sdk("email", "nodemailer")).default;

const SLACK_N = Number(process.env.BENCH_SLACK_N ?? 3000);
const EMAIL_N = Number(process.env.BENCH_EMAIL_N ?? 400);
const RUNS = Number(process.env.BENCH_RUNS ?? 3);
const CHANNELS = Number(process.env.BENCH_CHANNELS ?? 20);
const TOKEN = "xoxb-geowatch-test";
const SMTP = ["GEOWATCH_SMTP_HOST", "GEOWATCH_SMTP_PORT", "GEOWATCH_SMTP_USER", "GEOWATCH_SMTP_PASSWORD_FILE", "GEOWATCH_SMTP_CA", "GEOWATCH_SMTP_MAILDIR"];
for (const v of SMTP) {
  if (!process.env[v]) {
    console.error(`${v} is not set: start the SMTP server first: bash .ci/servers/smtp.sh start && source .servers/env/smtp.env`);
    process.exit(1);
  }
}

/** Peak RSS while `fn` runs, sampled every 20 ms. */
async function measure(fn) {
  let peak = process.memoryUsage().rss;
  const t = setInterval(() => (peak = Math.max(peak, process.memoryUsage().rss)), 20);
  globalThis.gc?.();
  const started = performance.now();
  try {
    const extra = await fn();
    return { ms: performance.now() - started, rssMb: Math.round(Math.max(peak, process.memoryUsage().rss) / 2 ** 20), ...extra };
  } finally {
    clearInterval(t);
  }
}

const median = (xs) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)];
const rate = (n, ms) => Math.round((n * 1000) / ms);
const channels = Array.from({ length: CHANNELS }, (_, i) => ({ id: `C${String(i).padStart(8, "0")}`, name: `bench-${i}` }));
const event = (i, recipient) => ({ metadata: { actiontype: "enter", targettype: "geofence", track: `t${i % 50}`, fence: "harbour", recipient }, data: { n: i, name: `vessel ${i}` } });

async function slackRaw(server) {
  const web = new WebClient(TOKEN, { slackApiUrl: server.url, retryConfig: { retries: 0 } });
  const byChannel = new Map();
  for (let i = 0; i < SLACK_N; i++) {
    const c = `#bench-${i % CHANNELS}`;
    if (!byChannel.has(c)) byChannel.set(c, []);
    byChannel.get(c).push(`vessel ${i} entered *harbour*`);
  }
  await Promise.all([...byChannel].map(async ([channel, texts]) => {
    for (const text of texts) await web.chat.postMessage({ channel, text });
  }));
}

async function slackBroker(server) {
  const input = memoryChannel();
  await input.producer().send(Array.from({ length: SLACK_N }, (_, i) => ({ value: JSON.stringify(event(i, `#bench-${i % CHANNELS}`)) })));
  const producer = slackProducer({ token: TOKEN, apiUrl: server.url, ratePerChannel: 100_000 });
  const broker = new Broker({
    name: "bench-slack",
    consumers: [{ name: "in", consumer: input.consumer(), codec: jsonCodec }],
    producers: [{ name: "slack", producer, codec: templateCodec({ format: "slack", templates: { default: "{{data.name}} entered *{{metadata.fence}}*" } }) }],
    count: 500,
    receiveWaitMs: 50,
    sleepPeriodMs: 50,
  });
  await broker.run({ untilIdle: true });
  await producer.close();
}

/** Mail files in the Maildir (new/), to count what arrived. */
const mailCount = () => readdirSync(join(process.env.GEOWATCH_SMTP_MAILDIR, "new")).length;
async function waitMails(target, timeoutMs = 60_000) {
  const deadline = Date.now() + timeoutMs;
  while (mailCount() < target && Date.now() < deadline) await new Promise((r) => setTimeout(r, 20));
  return mailCount();
}
const smtpOptions = () => ({
  host: process.env.GEOWATCH_SMTP_HOST,
  port: Number(process.env.GEOWATCH_SMTP_PORT),
  user: process.env.GEOWATCH_SMTP_USER,
  passwordFile: process.env.GEOWATCH_SMTP_PASSWORD_FILE,
  ca: process.env.GEOWATCH_SMTP_CA,
  from: "GeoWatch <geowatch@example.org>",
});

async function emailRaw() {
  const o = smtpOptions();
  const t = nodemailer.createTransport({
    host: o.host, port: o.port, requireTLS: true, pool: true, maxConnections: 2,
    auth: { user: o.user, pass: readFileSync(o.passwordFile, "utf8").trim() },
    tls: { ca: readFileSync(o.ca, "utf8") },
  });
  const before = mailCount();
  await Promise.all(Array.from({ length: EMAIL_N }, (_, i) => t.sendMail({ from: o.from, to: `user${i % 10}@example.org`, subject: `vessel ${i} entered harbour`, text: `vessel ${i} entered harbour` })));
  t.close();
  return { mails: (await waitMails(before + EMAIL_N)) - before };
}

async function emailBroker(digest) {
  const input = memoryChannel();
  await input.producer().send(Array.from({ length: EMAIL_N }, (_, i) => ({ value: JSON.stringify(event(i, `user${i % 10}@example.org`)) })));
  const producer = emailProducer({ ...smtpOptions(), ...(digest ? { digest: { maxEvents: 50 } } : {}) });
  const before = mailCount();
  const broker = new Broker({
    name: "bench-email",
    consumers: [{ name: "in", consumer: input.consumer(), codec: jsonCodec }],
    producers: [{ name: "email", producer, codec: templateCodec({ format: "email", templates: { default: "Subject: {{data.name}} entered {{metadata.fence}}\n\n{{data.name}} entered {{metadata.fence}}" } }) }],
    count: 500,
    receiveWaitMs: 50,
    sleepPeriodMs: 50,
  });
  await broker.run({ untilIdle: true });
  await producer.close();
  const expected = digest ? 10 * Math.ceil(EMAIL_N / 10 / 50) : EMAIL_N;
  return { mails: (await waitMails(before + expected)) - before, expected };
}

const slack = { raw: [], broker: [] };
const email = { raw: [], broker: [], digest: [] };
for (let run = 1; run <= RUNS; run++) {
  for (const mode of ["raw", "broker"]) {
    const server = await startSlackServer({ channels });
    const m = await measure(() => (mode === "raw" ? slackRaw(server) : slackBroker(server)));
    const got = server.messages.length;
    await server.close();
    if (got !== SLACK_N) throw new Error(`slack ${mode}: ${got} of ${SLACK_N} messages arrived`);
    slack[mode].push(m);
    console.log(`run ${run} slack ${mode}: ${rate(SLACK_N, m.ms)} msg/s, peak RSS ${m.rssMb} MB`);
  }
  for (const mode of ["raw", "broker", "digest"]) {
    const m = await measure(() => (mode === "raw" ? emailRaw() : emailBroker(mode === "digest")));
    const expected = m.expected ?? EMAIL_N;
    if (m.mails < expected) throw new Error(`email ${mode}: ${m.mails} of ${expected} mails arrived`);
    email[mode].push(m);
    console.log(`run ${run} email ${mode}: ${rate(EMAIL_N, m.ms)} events/s (${m.mails} mails), peak RSS ${m.rssMb} MB`);
  }
}

const summary = (xs, n) => `${rate(n, median(xs.map((x) => x.ms)))} /s (runs ${xs.map((x) => rate(n, x.ms)).join(" / ")}), peak RSS ${Math.max(...xs.map((x) => x.rssMb))} MB`;
const ratio = (a, b, n) => rate(n, median(a.map((x) => x.ms))) / rate(n, median(b.map((x) => x.ms)));
const slackRatio = ratio(slack.broker, slack.raw, SLACK_N);
const emailRatio = ratio(email.broker, email.raw, EMAIL_N);
console.log(`\nslack: ${SLACK_N} messages over ${CHANNELS} channels`);
console.log(`  raw @slack/web-api   ${summary(slack.raw, SLACK_N)}`);
console.log(`  geowatch broker      ${summary(slack.broker, SLACK_N)}`);
console.log(`  ratio broker/raw     ${slackRatio.toFixed(2)}x (target >= 0.7x) ${slackRatio >= 0.7 ? "pass" : "FAIL"}`);
console.log(`email: ${EMAIL_N} events to 10 recipients`);
console.log(`  raw nodemailer       ${summary(email.raw, EMAIL_N)}`);
console.log(`  geowatch broker      ${summary(email.broker, EMAIL_N)}`);
console.log(`  geowatch digest      ${summary(email.digest, EMAIL_N)} (${email.digest[0].mails} mails per run)`);
console.log(`  ratio broker/raw     ${emailRatio.toFixed(2)}x (target >= 0.7x) ${emailRatio >= 0.7 ? "pass" : "FAIL"}`);
process.exit(slackRatio >= 0.7 && emailRatio >= 0.7 ? 0 : 1);
