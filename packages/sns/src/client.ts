import { Agent } from "node:http";
import { Agent as HttpsAgent } from "node:https";
import { GetTopicAttributesCommand, ListTopicsCommand, SNSClient } from "@aws-sdk/client-sns";
import { GeoWatchError, reasonOf } from "@geowatch/core";
import type { BackendHealth } from "@geowatch/core";
import { NodeHttpHandler } from "@smithy/node-http-handler";
import type { SnsProducerOptions } from "./options.js";

export const BACKEND = "sns";

/** An SNS client from options; credentials come from the AWS SDK's default chain, never from here. */
export function makeClient(o: SnsProducerOptions): SNSClient {
  const endpoint = o.endpoint ?? (process.env.AWS_ENDPOINT_URL_SNS || undefined);
  const agentOpts = { keepAlive: true, maxSockets: 64 };
  return new SNSClient({
    ...(endpoint ? { endpoint } : {}),
    ...(o.region ? { region: o.region } : {}),
    maxAttempts: o.maxAttempts ?? 3,
    retryMode: "standard",
    requestHandler: new NodeHttpHandler({
      connectionTimeout: 3000,
      requestTimeout: o.requestTimeoutMs ?? 5000,
      httpAgent: new Agent(agentOpts),
      httpsAgent: new HttpsAgent(agentOpts),
    }),
  });
}

export const isArn = (t: string) => t.startsWith("arn:");
export const isFifo = (t: string) => t.endsWith(".fifo");

/** The topic ARN for an ARN (checked with GetTopicAttributes) or a name (found with ListTopics). */
export async function topicArn(client: SNSClient, topic: string): Promise<{ arn: string; contentDedup: boolean }> {
  try {
    let arn = isArn(topic) ? topic : undefined;
    for (let next: string | undefined, page = 0; !arn && page < 1000; page++) {
      const out = await client.send(new ListTopicsCommand(next ? { NextToken: next } : {}));
      arn = out.Topics?.map((t) => t.TopicArn ?? "").find((a) => a.slice(a.lastIndexOf(":") + 1) === topic);
      next = out.NextToken;
      if (!next) break;
    }
    if (!arn) throw new GeoWatchError("NOT_FOUND", `topic "${topic}" does not exist`, { backend: BACKEND });
    const a = await client.send(new GetTopicAttributesCommand({ TopicArn: arn }));
    return { arn, contentDedup: a.Attributes?.ContentBasedDeduplication === "true" };
  } catch (err) {
    throw awsError(err, `topic "${topic}"`);
  }
}

interface AwsLike {
  name?: string;
  $metadata?: { httpStatusCode?: number };
}

/** Throttling, 5xx and network errors: the call may work later. */
export function isTransient(err: unknown): boolean {
  const e = err as AwsLike;
  if (!e || typeof e !== "object" || err instanceof GeoWatchError) return false;
  if (e.name === "AbortError") return false;
  const status = e.$metadata?.httpStatusCode;
  if (status === undefined) return true; // no HTTP answer at all: connection refused, reset, timeout
  if (status >= 500 || status === 429) return true;
  return /Throttl|TooManyRequests|ServiceUnavailable|InternalError|KMSThrottling/i.test(e.name ?? "");
}

/** A GeoWatchError for an SDK error, naming what was being done; never includes credentials. */
export function awsError(err: unknown, what: string): GeoWatchError {
  if (err instanceof GeoWatchError) return err;
  const name = (err as AwsLike)?.name ?? "";
  if (/NotFound/.test(name)) return new GeoWatchError("NOT_FOUND", `${what} does not exist`, { backend: BACKEND, cause: err });
  if (/AuthorizationError|AccessDenied|InvalidClientTokenId|SignatureDoesNotMatch|UnrecognizedClient|ExpiredToken|CredentialsProviderError/.test(name)) {
    return new GeoWatchError("AUTH", `${what}: ${reasonOf(err)}`, { backend: BACKEND, cause: err });
  }
  return new GeoWatchError(isTransient(err) ? "CONNECT" : "SEND", `${what}: ${reasonOf(err)}`, { backend: BACKEND, cause: err, retryable: isTransient(err) });
}

/** Connection health from the outcome of calls: a transient failure marks the endpoint lost until a call succeeds. */
export class Health {
  private lost: string | undefined;
  ok(): void {
    this.lost = undefined;
  }
  failed(err: unknown): void {
    if (isTransient(err)) this.lost = reasonOf(err);
  }
  report(endpoint: string): BackendHealth {
    return this.lost === undefined ? { ok: true } : { ok: false, error: `[geowatch] [sns] ${endpoint} unreachable: ${this.lost}` };
  }
}
