import { defineBackend } from "@geowatch/core";
import { emailProducerSchema } from "./options.js";
import { emailProducer } from "./producer.js";

/** The email backend: `backend: email` in config. */
export const emailBackend = defineBackend({
  name: "email",
  description: "SMTP mail (nodemailer): STARTTLS, AUTH, templated subject/text/HTML, recipients from the message or config, per-recipient digests",
  producer: { options: emailProducerSchema, create: (o, ctx) => emailProducer(o, { logger: ctx.logger, secret: (ref) => ctx.secret(ref) }) },
});

export { emailProducer } from "./producer.js";
export type { EmailProducerDeps, Mail, MailTransport } from "./producer.js";
export { emailProducerSchema } from "./options.js";
export type { EmailProducerOptions } from "./options.js";
