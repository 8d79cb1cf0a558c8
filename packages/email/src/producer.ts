import { isIP } from "node:net";
import { GeoWatchError, isGeoWatchError, payloadText, readSecretFile, reasonOf, templateCodec } from "@geowatch/core";
import type { BackendHealth, Logger, OutRecord, Producer, SendResult, TemplateCodec } from "@geowatch/core";
import { createTransport } from "nodemailer";
import { emailProducerSchema, parseOptions } from "./options.js";
import type { EmailProducerOptions } from "./options.js";

const BACKEND = "email";
const DEFAULT_SUBJECT = "GeoWatch notification";

/** One mail as the producer hands it to the transport. */
export interface Mail {
  from: string;
  to: string[];
  subject: string;
  text: string;
  html?: string;
}

/** What the producer needs of an SMTP client (nodemailer's transporter has it): an injected one is used as is. */
export interface MailTransport {
  sendMail(mail: Mail): Promise<{ accepted?: unknown[]; rejected?: unknown[]; messageId?: string }>;
  verify?(): Promise<unknown>;
  close?(): void;
}

export interface EmailProducerDeps {
  logger?: Logger;
  /** Reads a secret (the env fallbacks); default process.env. */
  secret?: (ref: string) => string | undefined;
  transport?: MailTransport;
}

/** A record made ready to mail. */
interface Rendered {
  index: number;
  to: string[];
  subject: string;
  text: string;
  html?: string;
}

/**
 * Mails records over SMTP (nodemailer): STARTTLS and AUTH, subject/text/HTML from templates or from the template
 * codec's `format: email` payload, recipients from the message or from config. With `digest`, the records of one
 * send are grouped per recipient into mails of at most `maxEvents` events; a record's result is its mail's.
 * A record that cannot be rendered, names no recipient, or whose recipients the server refuses fails alone and
 * is not retried; a server that cannot be reached or refuses the login fails the records retryably.
 */
export function emailProducer(options: EmailProducerOptions, deps: EmailProducerDeps = {}): Producer {
  const o = parseOptions<EmailProducerOptions>(emailProducerSchema, options, "email producer");
  const secret = deps.secret ?? ((ref: string) => process.env[ref]);
  const log = deps.logger;
  const subjectT = o.subject !== undefined ? compile(o.subject, "subject", "none") : undefined;
  const textT = o.text !== undefined ? compile(o.text, "text", "none") : undefined;
  const htmlT = o.html !== undefined ? compile(o.html, "html", "html") : undefined;
  const digestSubject = o.digest ? compile(o.digest.subject ?? "GeoWatch: {{metadata.count}} notifications", "digest.subject", "none") : undefined;
  const fallbackTo = o.to === undefined ? [] : Array.isArray(o.to) ? o.to : [o.to];
  let transport = deps.transport;
  let health: BackendHealth = { ok: true };

  const getTransport = (): MailTransport => {
    if (transport) return transport;
    const port = o.port ?? numberEnv(secret("GEOWATCH_SMTP_PORT")) ?? 587;
    const host = o.host ?? secret("GEOWATCH_SMTP_HOST") ?? "localhost";
    const user = o.user ?? secret("GEOWATCH_SMTP_USER");
    const password = o.password ?? secret("GEOWATCH_SMTP_PASSWORD") ?? readSecretFile(o.passwordFile ?? secret("GEOWATCH_SMTP_PASSWORD_FILE"), "password_file", BACKEND);
    const caFile = o.ca ?? secret("GEOWATCH_SMTP_CA");
    if (user !== undefined && password === undefined) {
      throw new GeoWatchError("CONFIG", "user is set but no password: set password, password_file, GEOWATCH_SMTP_PASSWORD or GEOWATCH_SMTP_PASSWORD_FILE", { backend: BACKEND, path: "password" });
    }
    const starttls = o.starttls ?? "required";
    const timeout = o.timeoutMs ?? 20_000;
    const tls: Record<string, unknown> = { rejectUnauthorized: o.rejectUnauthorized ?? true };
    // SNI takes host names only (RFC 6066); an IP address is still checked against the certificate.
    if (isIP(host) === 0) tls.servername = host;
    if (caFile !== undefined) tls.ca = readSecretFile(caFile, "ca", BACKEND);
    const t = createTransport({
      host,
      port,
      secure: o.secure ?? false,
      requireTLS: starttls === "required",
      ignoreTLS: starttls === "off",
      ...(user !== undefined ? { auth: { user, pass: password! } } : {}),
      tls,
      pool: true,
      maxConnections: o.poolSize ?? 2,
      connectionTimeout: timeout,
      greetingTimeout: timeout,
      socketTimeout: timeout,
      logger: false,
      debug: false,
    });
    transport = t as unknown as MailTransport;
    return transport;
  };

  const render = (r: OutRecord, index: number): Rendered => {
    const raw = payloadText(r.value);
    const value = parseJson(raw);
    const fromCodec = emailShaped(value);
    const to = recipientsOf(r) ?? fallbackTo;
    if (to.length === 0) throw new GeoWatchError("VALIDATE", "no recipient: the message has no metadata.recipient or recipient header and options.to is unset", { backend: BACKEND });
    const subject = (subjectT ? subjectT.render(value) : (fromCodec?.subject ?? DEFAULT_SUBJECT)).replace(/[\r\n]+/g, " ").trim();
    const text = textT ? textT.render(value) : (fromCodec?.text ?? (typeof value === "string" ? value : raw));
    const html = htmlT ? htmlT.render(value) : fromCodec?.html;
    const out: Rendered = { index, to, subject, text };
    if (html !== undefined) out.html = html;
    return out;
  };

  /** Sends one mail; the result for every record in it. */
  const mail = async (m: Mail): Promise<SendResult> => {
    try {
      const info = await getTransport().sendMail(m);
      health = { ok: true };
      const rejected = (info.rejected ?? []).map(String);
      if (rejected.length > 0) log?.warn("the server refused some recipients of a mail; the others got it", { rejected: rejected.length, accepted: (info.accepted ?? []).length });
      return info.messageId ? { ok: true, id: info.messageId } : { ok: true };
    } catch (err) {
      return classify(err, m.to);
    }
  };

  const classify = (err: unknown, to: string[]): SendResult => {
    if (isGeoWatchError(err)) return { ok: false, error: err, retryable: err.retryable };
    const e = err as { code?: unknown; responseCode?: unknown; response?: unknown };
    const code = typeof e.code === "string" ? e.code : "";
    const status = typeof e.responseCode === "number" ? e.responseCode : undefined;
    const said = typeof e.response === "string" ? `: ${e.response}` : "";
    if (code === "EAUTH") {
      health = { ok: false, error: "the SMTP server refuses the login" };
      return { ok: false, retryable: true, error: new GeoWatchError("AUTH", `the SMTP server refuses the login${said}`, { backend: BACKEND, cause: err, retryable: true }) };
    }
    if (status === 421) {
      // 421: the server is closing the channel (shutting down, overloaded): an outage, not the mail's fault.
      return { ok: false, retryable: true, error: new GeoWatchError("CONNECT", `the SMTP server is not available${said}`, { backend: BACKEND, cause: err, retryable: true }) };
    }
    if (code === "EENVELOPE" || code === "EMESSAGE") {
      // 5xx: the server will not take this mail (a refused address, a message too big); 4xx: try again later.
      const permanent = status === undefined || status >= 500;
      const what = code === "EENVELOPE" ? `refused the recipient(s) ${to.join(", ")}` : "refused the message";
      return { ok: false, retryable: !permanent, error: new GeoWatchError("SEND", `the SMTP server ${what}${said || `: ${reasonOf(err)}`}`, { backend: BACKEND, cause: err, retryable: !permanent }) };
    }
    if (code === "ETLS") {
      health = { ok: false, error: `STARTTLS failed: ${reasonOf(err)}` };
      return { ok: false, retryable: true, error: new GeoWatchError("CONNECT", `STARTTLS with the SMTP server failed: ${reasonOf(err)}`, { backend: BACKEND, cause: err, retryable: true }) };
    }
    if (status !== undefined && status >= 500) {
      return { ok: false, retryable: false, error: new GeoWatchError("SEND", `the SMTP server refused the mail${said}`, { backend: BACKEND, cause: err }) };
    }
    return { ok: false, retryable: true, error: new GeoWatchError("CONNECT", `cannot reach the SMTP server: ${reasonOf(err)}`, { backend: BACKEND, cause: err, retryable: true }) };
  };

  const mailOne = (x: Rendered): Promise<SendResult> => {
    const m: Mail = { from: o.from, to: x.to, subject: x.subject, text: x.text };
    if (x.html !== undefined) m.html = x.html;
    return mail(m);
  };

  /** Digest mails: per recipient list, in arrival order, at most maxEvents events each. */
  const digests = (rendered: Rendered[]): Array<{ members: Rendered[]; mail: Mail }> => {
    const max = o.digest!.maxEvents;
    const groups = new Map<string, Rendered[]>();
    for (const x of rendered) {
      const key = x.to.map((a) => a.toLowerCase()).sort().join(",");
      let g = groups.get(key);
      if (!g) groups.set(key, (g = []));
      g.push(x);
    }
    const out: Array<{ members: Rendered[]; mail: Mail }> = [];
    for (const g of groups.values()) {
      for (let i = 0; i < g.length; i += max) {
        const members = g.slice(i, i + max);
        const recipient = members[0]!.to.join(", ");
        const subject = digestSubject!.render({ metadata: { count: members.length, recipient }, data: null }).replace(/[\r\n]+/g, " ").trim();
        const text = members.map((x, n) => `${n + 1}. ${x.subject}\n\n${x.text}`).join("\n\n----\n\n");
        const m: Mail = { from: o.from, to: members[0]!.to, subject, text };
        if (members.some((x) => x.html !== undefined)) {
          m.html = members.map((x) => `<section><h3>${escapeHtml(x.subject)}</h3>${x.html ?? `<pre>${escapeHtml(x.text)}</pre>`}</section>`).join("<hr>");
        }
        out.push({ members, mail: m });
      }
    }
    return out;
  };

  return {
    capabilities: { batching: true },
    async connect() {
      const t = getTransport();
      if (!t.verify) return;
      try {
        await t.verify();
        health = { ok: true };
      } catch (err) {
        const r = classify(err, []);
        if (!r.ok && isGeoWatchError(r.error, "AUTH")) throw new GeoWatchError("AUTH", r.error.message.replace(/^\[geowatch\] \[email\] /, ""), { backend: BACKEND, cause: err });
        throw !r.ok ? r.error : err;
      }
    },
    async send(records: OutRecord[]): Promise<SendResult[]> {
      const results: SendResult[] = new Array<SendResult>(records.length);
      const rendered: Rendered[] = [];
      records.forEach((r, i) => {
        try {
          rendered.push(render(r, i));
        } catch (err) {
          results[i] = { ok: false, retryable: false, error: isGeoWatchError(err) ? err : new GeoWatchError("ENCODE", reasonOf(err), { backend: BACKEND, cause: err }) };
        }
      });
      if (o.digest) {
        await Promise.all(
          digests(rendered).map(async (d) => {
            const res = await mail(d.mail);
            for (const x of d.members) results[x.index] = res;
          }),
        );
      } else {
        await Promise.all(
          rendered.map(async (x) => {
            results[x.index] = await mailOne(x);
          }),
        );
      }
      return results;
    },
    health: () => health,
    async close() {
      transport?.close?.();
    },
  };
}

/** The recipients a message names: `metadata.recipient` (one address or a list), else a `recipient` header. */
function recipientsOf(r: OutRecord): string[] | undefined {
  const m = r.metadata?.recipient;
  if (typeof m === "string" && m.trim() !== "") return [m.trim()];
  if (Array.isArray(m)) {
    const list = m.filter((x): x is string => typeof x === "string" && x.trim() !== "").map((x) => x.trim());
    if (list.length > 0) return list;
  }
  const h = r.headers?.recipient;
  if (typeof h === "string" && h.trim() !== "") return h.split(",").map((x) => x.trim()).filter(Boolean);
  return undefined;
}

function parseJson(text: string): unknown {
  const t = text.trimStart();
  if (!t.startsWith("{") && !t.startsWith("[")) return text;
  try {
    return JSON.parse(text) as unknown;
  } catch {
    return text;
  }
}

/** The template codec's `format: email` payload: `{ subject, text }` (and `html` when a producer made one). */
function emailShaped(v: unknown): { subject: string; text: string; html?: string } | undefined {
  if (v === null || typeof v !== "object" || Array.isArray(v)) return undefined;
  const o = v as { subject?: unknown; text?: unknown; html?: unknown };
  if (typeof o.subject !== "string" || (typeof o.text !== "string" && typeof o.html !== "string")) return undefined;
  const out: { subject: string; text: string; html?: string } = { subject: o.subject, text: typeof o.text === "string" ? o.text : "" };
  if (typeof o.html === "string") out.html = o.html;
  return out;
}

/** Templates over the payload with core's template engine; a broken one is a CONFIG error at startup. */
function compile(source: string | Record<string, string>, what: string, escape: "none" | "html"): TemplateCodec {
  try {
    return templateCodec({ templates: typeof source === "string" ? { default: source } : source, escape });
  } catch (err) {
    throw new GeoWatchError("CONFIG", `options.${what}: ${reasonOf(err).replace(/^\[geowatch\] \[template\] /, "")}`, { backend: BACKEND, cause: err, path: what });
  }
}


function numberEnv(v: string | undefined): number | undefined {
  const n = v === undefined ? NaN : Number(v);
  return Number.isInteger(n) && n > 0 ? n : undefined;
}

function escapeHtml(s: string): string {
  return s.replace(/&/g, "&amp;").replace(/</g, "&lt;").replace(/>/g, "&gt;").replace(/"/g, "&quot;");
}
