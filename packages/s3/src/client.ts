import { HeadBucketCommand, S3Client } from "@aws-sdk/client-s3";
import { NodeHttpHandler } from "@smithy/node-http-handler";
import { GeoWatchError, reasonOf } from "@geowatch/core";
import type { BackendHealth } from "@geowatch/core";
import type { S3ClientOptions } from "./options.js";

/** The SDK error fields this package reads (kept structural so no SDK type leaks into the public API). */
interface SdkError {
  name?: string;
  code?: string;
  Code?: string;
  $metadata?: { httpStatusCode?: number };
  $retryable?: unknown;
}

const NETWORK = new Set(["ECONNREFUSED", "ECONNRESET", "ETIMEDOUT", "EHOSTUNREACH", "ENETUNREACH", "ENOTFOUND", "EAI_AGAIN", "EPIPE", "TimeoutError", "RequestTimeout"]);

/** True when the endpoint could not be reached at all (no HTTP answer). */
export function isNetworkError(err: unknown): boolean {
  const e = err as SdkError | undefined;
  if (!e || typeof e !== "object") return false;
  if (e.$metadata?.httpStatusCode !== undefined) return false;
  const code = e.code ?? e.name ?? "";
  return NETWORK.has(code) || /socket hang up|ECONNREFUSED|ECONNRESET|connect ETIMEDOUT|timed? ?out/i.test(String((err as Error).message));
}

export function statusOf(err: unknown): number | undefined {
  return (err as SdkError | undefined)?.$metadata?.httpStatusCode;
}

export function codeOf(err: unknown): string {
  const e = err as SdkError | undefined;
  return e?.name ?? e?.Code ?? e?.code ?? "";
}

/** One S3 client plus what the runtime needs to know about its connection. */
export interface S3Link {
  readonly client: S3Client;
  readonly bucket: string;
  /** Runs one request; a network failure marks the endpoint down (and probes it until it answers), an answer marks it up. */
  send<T>(what: string, run: (client: S3Client) => Promise<T>): Promise<T>;
  health(): BackendHealth;
  /** Checks the bucket exists and the credentials may use it. */
  check(): Promise<void>;
  close(): void;
}

export function s3Link(o: S3ClientOptions): S3Link {
  const endpoint = o.endpoint ?? process.env.AWS_ENDPOINT_URL_S3;
  const region = o.region ?? process.env.AWS_REGION ?? process.env.AWS_DEFAULT_REGION;
  const client = new S3Client({
    ...(region ? { region } : {}),
    ...(endpoint ? { endpoint } : {}),
    forcePathStyle: o.forcePathStyle ?? endpoint !== undefined,
    maxAttempts: o.maxAttempts ?? 5,
    retryMode: "standard",
    requestHandler: new NodeHttpHandler({ connectionTimeout: o.connectTimeoutMs ?? 3000, requestTimeout: o.requestTimeoutMs ?? 60_000 }),
  });
  let down: string | undefined;
  let probe: NodeJS.Timeout | undefined;
  let closed = false;

  function markDown(reason: string): void {
    down = reason;
    if (probe || closed) return;
    // Nothing else may call while idle: probe until the endpoint answers, so health() turns ok by itself.
    probe = setInterval(() => {
      client.send(new HeadBucketCommand({ Bucket: o.bucket })).then(
        () => markUp(),
        (err: unknown) => {
          if (!isNetworkError(err)) markUp();
        },
      );
    }, 1000);
    probe.unref();
  }

  function markUp(): void {
    down = undefined;
    clearInterval(probe);
    probe = undefined;
  }

  async function send<T>(what: string, run: (c: S3Client) => Promise<T>): Promise<T> {
    try {
      const out = await run(client);
      if (down !== undefined) markUp();
      return out;
    } catch (err) {
      if (isNetworkError(err)) {
        markDown(`${what}: ${reasonOf(err)}`);
        throw new GeoWatchError("CONNECT", `${what}: endpoint unreachable (${reasonOf(err)})`, { backend: "s3", cause: err, retryable: true });
      }
      if (down !== undefined) markUp();
      throw err;
    }
  }

  return {
    client,
    bucket: o.bucket,
    send,
    health: () => (down === undefined ? { ok: true } : { ok: false, error: down }),
    async check() {
      try {
        await send(`bucket "${o.bucket}"`, (c) => c.send(new HeadBucketCommand({ Bucket: o.bucket })));
      } catch (err) {
        throw describe(err, `bucket "${o.bucket}"`);
      }
    },
    close() {
      closed = true;
      clearInterval(probe);
      probe = undefined;
      client.destroy();
    },
  };
}

/** Maps an SDK error to a GeoWatchError with a code the runtime acts on. */
export function describe(err: unknown, what: string): GeoWatchError {
  if (err instanceof GeoWatchError) return err;
  const status = statusOf(err);
  const code = codeOf(err);
  const detail = `${code || "error"}${status ? ` (HTTP ${status})` : ""}: ${reasonOf(err)}`;
  if (status === 404 || code === "NoSuchBucket" || code === "NotFound") {
    return new GeoWatchError("CONFIG", `${what} does not exist (${detail})`, { backend: "s3", cause: err });
  }
  if (status === 401 || status === 403 || /AccessDenied|InvalidAccessKeyId|SignatureDoesNotMatch|ExpiredToken|CredentialsProviderError/.test(code)) {
    return new GeoWatchError("AUTH", `${what}: not allowed (${detail})`, { backend: "s3", cause: err });
  }
  return new GeoWatchError("STORE", `${what} failed: ${detail}`, { backend: "s3", cause: err, retryable: status === undefined || status >= 500 || status === 429 || status === 409 || status === 412 });
}
