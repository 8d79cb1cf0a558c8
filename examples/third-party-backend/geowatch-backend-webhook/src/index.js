// A complete GeoWatch backend in one small file: a factory returning a plain Producer, and its
// definition from one option schema, so config can name it (`backend: geowatch-backend-webhook`) and
// `geowatch validate` checks its options.
import { defineBackend, GeoWatchError } from "@geowatch/core";
import { z } from "zod";

/** The options, described once: validation, docs and the JSON Schema come from here. */
export const webhookOptions = z.strictObject({
  url: z
    .string()
    .refine((s) => {
      try {
        return ["http:", "https:"].includes(new URL(s).protocol);
      } catch {
        return false;
      }
    }, "must be an http(s) URL")
    .describe("Endpoint each record is POSTed to."),
  timeoutMs: z.number().int().positive().optional().meta({ default: 10000 }).describe("Per-request timeout in ms."),
});

/** @param {import("./index.d.ts").WebhookOptions} options @returns {import("@geowatch/core").Producer} */
export function webhookProducer(options) {
  const url = new URL(options.url);
  const timeoutMs = options.timeoutMs ?? 10_000;
  return {
    capabilities: { batching: false },
    async send(records) {
      return Promise.all(
        records.map(async (r) => {
          try {
            const res = await fetch(url, {
              method: "POST",
              body: r.value,
              headers: { "content-type": r.contentType ?? "application/json", ...(r.key ? { "x-key": r.key } : {}), ...r.headers },
              signal: AbortSignal.timeout(timeoutMs),
            });
            await res.arrayBuffer();
            if (res.ok) return { ok: true };
            return { ok: false, retryable: res.status >= 500 || res.status === 429, error: new GeoWatchError("SEND", `POST ${url.host}${url.pathname} answered ${res.status}`, { backend: "webhook" }) };
          } catch (cause) {
            return { ok: false, retryable: true, error: new GeoWatchError("SEND", `POST ${url.host}${url.pathname} failed`, { backend: "webhook", cause }) };
          }
        }),
      );
    },
  };
}

export const webhookBackend = defineBackend({
  name: "geowatch-backend-webhook",
  description: "POSTs each record to an HTTP endpoint",
  producer: { options: webhookOptions, create: (o) => webhookProducer(o) },
});
