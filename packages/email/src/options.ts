/** Options of the email producer: one zod schema gives validation, types, docs and JSON Schema. */
import { parseOptions as parseWith } from "@geowatch/core";
import { z } from "zod";

const nonEmpty = z.string().min(1, "must be a non-empty string");
/** A template string, or templates keyed like the template codec's (`"<actiontype>.<targettype>"`, `"default"`). */
const template = z.union([nonEmpty, z.record(z.string(), z.string())]);

export const emailProducerSchema = z.strictObject({
  host: nonEmpty.optional().meta({ env: "GEOWATCH_SMTP_HOST", default: "localhost" }).describe("SMTP server host."),
  port: z
    .number()
    .int("must be an integer")
    .min(1)
    .max(65535)
    .optional()
    .meta({ env: "GEOWATCH_SMTP_PORT", default: 587 })
    .describe("SMTP server port (587 submission with STARTTLS, 465 with `secure`, 25 relay)."),
  secure: z.boolean().optional().meta({ default: false }).describe("TLS from the first byte (port 465). Otherwise the connection is upgraded with STARTTLS as `starttls` says."),
  starttls: z
    .enum(["required", "opportunistic", "off"])
    .optional()
    .meta({ default: "required" })
    .describe("`required`: refuse to send unless the server upgrades to TLS (STARTTLS); `opportunistic`: upgrade when offered; `off`: never (loopback relays only)."),
  user: nonEmpty.optional().meta({ env: "GEOWATCH_SMTP_USER" }).describe("SMTP AUTH user name. Without it no AUTH is attempted."),
  password: nonEmpty.optional().meta({ env: "GEOWATCH_SMTP_PASSWORD", secret: true }).describe("SMTP AUTH password; never logged. Or `password_file`."),
  passwordFile: nonEmpty
    .optional()
    .meta({ env: "GEOWATCH_SMTP_PASSWORD_FILE", path: true })
    .describe("File holding the SMTP AUTH password (surrounding whitespace trimmed), instead of `password`."),
  ca: nonEmpty.optional().meta({ env: "GEOWATCH_SMTP_CA", path: true }).describe("PEM file of the CA (or the self-signed certificate) the server's certificate must chain to. Default: Node's CA store."),
  rejectUnauthorized: z.boolean().optional().meta({ default: true }).describe("Refuse a server certificate that does not verify. Turn off only for a loopback test server."),
  from: nonEmpty.describe("Sender: `GeoWatch <geowatch@example.org>`."),
  to: z
    .union([nonEmpty, z.array(nonEmpty).min(1)])
    .optional()
    .describe("Recipients of messages that name none themselves (`metadata.recipient`, or a `recipient` header)."),
  subject: template
    .optional()
    .describe(
      "Subject template (core's template engine, over `{ metadata, data, value }` of the JSON payload), or templates by `<actiontype>.<targettype>`. Default: the payload's `subject` (the template codec's `format: email`), else \"GeoWatch notification\".",
    ),
  text: template.optional().describe("Plain-text body template, like `subject`. Default: the payload's `text`, else the payload itself."),
  html: template.optional().describe("HTML body template, like `subject`, with `{{var}}` output HTML-escaped. Default: the payload's `html`, else none."),
  digest: z
    .strictObject({
      maxEvents: z.number().int("must be an integer").positive("must be > 0").describe("Most events in one mail."),
      subject: nonEmpty
        .optional()
        .meta({ default: "GeoWatch: {{metadata.count}} notifications" })
        .describe("Digest subject template; `metadata.count` and `metadata.recipient` are set."),
    })
    .optional()
    .describe(
      "Mail each recipient one digest per send instead of one mail per message: up to `max_events` events per mail, in arrival order. Set the node's `linger_ms` to the longest time an event may wait (T): the broker then collects events for T and acknowledges them only once their digest was sent.",
    ),
  poolSize: z.number().int("must be an integer").positive("must be > 0").optional().meta({ default: 2 }).describe("SMTP connections kept open and used in parallel."),
  timeoutMs: z.number().int("must be an integer").positive("must be > 0").optional().meta({ default: 20000 }).describe("Connection, greeting and socket timeouts in ms."),
});

/** Options of `emailProducer`. */
export type EmailProducerOptions = z.input<typeof emailProducerSchema>;

/** Parses options or throws one CONFIG error listing every problem with its path. */
export function parseOptions<T>(schema: z.ZodType, options: unknown, what: string): T {
  return parseWith(schema as z.ZodType<T>, options, what, "email");
}
