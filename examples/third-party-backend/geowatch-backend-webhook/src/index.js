// A complete GeoWatch backend in one small file: a typed factory returning a plain Producer, and a
// BackendDefinition so config can name it (`backend: geowatch-backend-webhook`).
import { GeoWatchError } from "@geowatch/core";

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

/** @type {import("@geowatch/core").BackendDefinition} */
export const webhookBackend = {
  name: "geowatch-backend-webhook",
  producer: (o) => webhookProducer(/** @type {any} */ (o)),
  options: {
    url: { type: "string", description: "Endpoint each record is POSTed to.", required: true },
    timeoutMs: { type: "number", description: "Per-request timeout in ms.", default: 10000 },
  },
  validate(o) {
    const issues = [];
    try {
      const u = new URL(String(o.url));
      if (u.protocol !== "http:" && u.protocol !== "https:") issues.push({ path: "url", message: "must be an http(s) URL" });
    } catch {
      issues.push({ path: "url", message: "must be a URL" });
    }
    for (const k of Object.keys(o)) if (k !== "url" && k !== "timeoutMs") issues.push({ path: k, message: `unknown option "${k}"` });
    return issues;
  },
};
