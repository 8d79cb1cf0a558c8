import { Agent } from "node:http";
import { Agent as HttpsAgent } from "node:https";
import { GetQueueAttributesCommand, GetQueueUrlCommand, SQSClient } from "@aws-sdk/client-sqs";
import { GeoWatchError, reasonOf } from "@geowatch/core";
import type { BackendHealth } from "@geowatch/core";
import { NodeHttpHandler } from "@smithy/node-http-handler";
import type { SqsConnectionOptions } from "./options.js";

export const BACKEND = "sqs";

/** An SQS client from options; credentials come from the AWS SDK's default chain, never from here. */
export function makeClient(o: SqsConnectionOptions, extraTimeoutMs = 0): SQSClient {
  const endpoint = o.endpoint ?? (process.env.AWS_ENDPOINT_URL_SQS || undefined);
  const agentOpts = { keepAlive: true, maxSockets: 64 };
  return new SQSClient({
    ...(endpoint ? { endpoint } : {}),
    ...(o.region ? { region: o.region } : {}),
    maxAttempts: o.maxAttempts ?? 3,
    retryMode: "standard",
    requestHandler: new NodeHttpHandler({
      connectionTimeout: 3000,
      requestTimeout: (o.requestTimeoutMs ?? 5000) + extraTimeoutMs,
      httpAgent: new Agent(agentOpts),
      httpsAgent: new HttpsAgent(agentOpts),
    }),
  });
}

/** True for a queue given as a URL rather than a name. */
const isUrl = (q: string) => /^https?:\/\//.test(q);

/** The queue's name, from a name or a URL. */
export const queueName = (q: string) => (isUrl(q) ? q.slice(q.lastIndexOf("/") + 1) : q);

export const isFifo = (q: string) => queueName(q).endsWith(".fifo");

/** The queue URL for a name (GetQueueUrl) or the URL itself. */
export async function queueUrl(client: SQSClient, queue: string, signal?: AbortSignal): Promise<string> {
  if (isUrl(queue)) return queue;
  try {
    const out = await client.send(new GetQueueUrlCommand({ QueueName: queue }), { abortSignal: signal });
    if (!out.QueueUrl) throw new Error("GetQueueUrl returned no QueueUrl");
    return out.QueueUrl;
  } catch (err) {
    throw awsError(err, `queue "${queue}"`);
  }
}

/** Queue attributes by name. */
export async function queueAttributes(client: SQSClient, url: string, names: string[]): Promise<Record<string, string>> {
  const out = await client.send(new GetQueueAttributesCommand({ QueueUrl: url, AttributeNames: names as never }));
  return out.Attributes ?? {};
}

interface AwsLike {
  name?: string;
  code?: string;
  $fault?: "client" | "server";
  $metadata?: { httpStatusCode?: number };
  $retryable?: unknown;
}

/** Throttling, 5xx and network errors: the call may work later. */
export function isTransient(err: unknown): boolean {
  const e = err as AwsLike;
  if (!e || typeof e !== "object" || err instanceof GeoWatchError) return false;
  if (e.name === "AbortError") return false;
  const status = e.$metadata?.httpStatusCode;
  if (status === undefined) return true; // no HTTP answer at all: connection refused, reset, timeout
  if (status >= 500 || status === 429) return true;
  return /Throttl|RequestThrottled|TooManyRequests|ServiceUnavailable|InternalError|KmsThrottled/i.test(e.name ?? "");
}

/** A GeoWatchError for an SDK error, naming what was being done; never includes credentials. */
export function awsError(err: unknown, what: string): GeoWatchError {
  if (err instanceof GeoWatchError) return err;
  const name = (err as AwsLike)?.name ?? "";
  if (/QueueDoesNotExist|NonExistentQueue/.test(name)) {
    return new GeoWatchError("NOT_FOUND", `${what} does not exist`, { backend: BACKEND, cause: err });
  }
  if (/AccessDenied|InvalidClientTokenId|SignatureDoesNotMatch|UnrecognizedClient|ExpiredToken|CredentialsProviderError/.test(name)) {
    return new GeoWatchError("AUTH", `${what}: ${reasonOf(err)}`, { backend: BACKEND, cause: err });
  }
  return new GeoWatchError(isTransient(err) ? "CONNECT" : "SEND", `${what}: ${reasonOf(err)}`, { backend: BACKEND, cause: err, retryable: isTransient(err) });
}

/**
 * Connection health from the outcome of calls: a transient failure (no answer, 5xx, throttling) marks
 * the endpoint as lost until a call succeeds again, so `/ready` answers 503 meanwhile.
 */
export class Health {
  private lost: string | undefined;
  ok(): void {
    this.lost = undefined;
  }
  failed(err: unknown): void {
    if (isTransient(err)) this.lost = reasonOf(err);
  }
  get isLost(): boolean {
    return this.lost !== undefined;
  }
  report(endpoint: string): BackendHealth {
    return this.lost === undefined ? { ok: true } : { ok: false, error: `[geowatch] [sqs] ${endpoint} unreachable: ${this.lost}` };
  }
}
