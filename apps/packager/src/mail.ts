/**
 * The download mail, through @geowatch/email: EMAIL_SUBJECT / EMAIL_FROM / EMAIL_BODY with ckanpackager's
 * placeholders ({resource_id}, {zip_file_name}, {ckan_host}, plus {link} and {expires}), turned into core
 * templates over the job's fields.
 */
import { GeoWatchError } from "@geowatch/core";
import type { Producer } from "@geowatch/core";
import { emailProducer } from "@geowatch/email";
import type { MailTransport } from "@geowatch/email";
import type { PackagerConfig } from "./config.js";
import { DEFAULT_EMAIL_BODY } from "./config.js";

export interface MailFields {
  resource_id: string;
  zip_file_name: string;
  ckan_host: string;
  link: string;
  expires: string;
}

/** `{name}` (ckanpackager's Python format fields) -> `{{data.name}}`; `{{...}}` is left as it is. */
export function toTemplate(s: string): string {
  return s.replace(/(?<!\{)\{([A-Za-z_][A-Za-z0-9_]*)\}(?!\})/g, "{{data.$1}}");
}

const fill = (s: string, f: MailFields) => s.replace(/(?<!\{)\{([A-Za-z_][A-Za-z0-9_]*)\}(?!\})/g, (m, k: string) => (k in f ? String(f[k as keyof MailFields]) : m));

export class Mailer {
  private readonly producers = new Map<string, Producer>();

  constructor(
    private readonly config: PackagerConfig,
    private readonly transport?: MailTransport,
  ) {}

  private producer(from: string): Producer {
    let p = this.producers.get(from);
    if (!p) {
      const e = this.config.email;
      p = emailProducer(
        {
          host: e.host,
          port: e.port,
          secure: e.secure,
          starttls: e.starttls,
          user: e.user,
          password: e.password,
          passwordFile: e.passwordFile,
          ca: e.ca,
          from,
          subject: toTemplate(e.subject ?? "Resource from {ckan_host}"),
          text: toTemplate(e.body ?? DEFAULT_EMAIL_BODY),
        },
        { transport: this.transport },
      );
      this.producers.set(from, p);
    }
    return p;
  }

  async send(to: string, fields: MailFields): Promise<void> {
    const from = fill(this.config.email.from ?? "(nobody)", fields);
    const value = JSON.stringify({ metadata: { recipient: to }, data: fields });
    const [res] = await this.producer(from).send([{ value, metadata: { recipient: to } }]);
    if (!res) throw new GeoWatchError("SEND", "mail to the requester failed: no result", { retryable: true });
    if (!res.ok) throw new GeoWatchError("SEND", `mail to the requester failed: ${res.error.message}`, { cause: res.error, retryable: res.retryable ?? true });
  }

  async close(): Promise<void> {
    for (const p of this.producers.values()) await p.close?.();
    this.producers.clear();
  }
}
