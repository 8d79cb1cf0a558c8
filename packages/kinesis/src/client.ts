/** The AWS clients (HTTP/1.1 handler, endpoint, region from the SDK chain) and error classification. */
import { DynamoDBClient } from "@aws-sdk/client-dynamodb";
import { KinesisClient } from "@aws-sdk/client-kinesis";
import { GeoWatchError, reasonOf } from "@geowatch/core";
import { NodeHttpHandler } from "@smithy/node-http-handler";

export const BACKEND = "kinesis";

export interface ClientOptions {
  endpoint?: string | undefined;
  region?: string | undefined;
}

/**
 * Region as the SDK finds it (env, shared config) unless given; a local endpoint without one gets
 * us-east-1 so kinesalite and moto work out of the box. Credentials always come from the SDK's chain.
 */
function regionFor(o: ClientOptions): string | undefined {
  return o.region ?? process.env.AWS_REGION ?? process.env.AWS_DEFAULT_REGION ?? (o.endpoint ? "us-east-1" : undefined);
}

// HTTP/1.1 with short connect timeouts: a lost endpoint fails a call in seconds instead of hanging, and
// kinesalite and moto do not speak the Kinesis client's default HTTP/2.
const handler = () => new NodeHttpHandler({ connectionTimeout: 3000, requestTimeout: 30_000 });

export function kinesisClient(o: ClientOptions): KinesisClient {
  const endpoint = o.endpoint ?? process.env.GEOWATCH_KINESIS_ENDPOINT;
  const region = regionFor({ endpoint, region: o.region });
  // The SDK's standard retry mode: throttling, 5xx and transient network errors, exponential backoff with full jitter.
  return new KinesisClient({ ...(endpoint ? { endpoint } : {}), ...(region ? { region } : {}), maxAttempts: 3, requestHandler: handler() });
}

export function dynamoClient(o: ClientOptions): DynamoDBClient {
  const endpoint = o.endpoint ?? process.env.GEOWATCH_DYNAMODB_ENDPOINT;
  const region = regionFor({ endpoint, region: o.region });
  return new DynamoDBClient({ ...(endpoint ? { endpoint } : {}), ...(region ? { region } : {}), maxAttempts: 3, requestHandler: handler() });
}

/** The AWS error name (`ProvisionedThroughputExceededException`), or the Node error code (`ECONNREFUSED`). */
export function errorName(err: unknown): string {
  const e = err as { name?: string; code?: string; Code?: string };
  return e?.code && /^E[A-Z]+$/.test(e.code) ? e.code : (e?.name ?? e?.Code ?? "Error");
}

const THROTTLE = new Set([
  "ProvisionedThroughputExceededException", "ThrottlingException", "LimitExceededException", "KMSThrottlingException",
  "RequestLimitExceeded", "TooManyRequestsException", "InternalFailure", "InternalServerError", "ServiceUnavailable",
]);

/** Throttling or a server-side error: the same call may succeed after a backoff. */
export function isThrottleOr5xx(err: unknown): boolean {
  const status = (err as { $metadata?: { httpStatusCode?: number } })?.$metadata?.httpStatusCode;
  return THROTTLE.has(errorName(err)) || (status !== undefined && status >= 500);
}

/** The server answered with a 5xx status. */
export function is5xx(err: unknown): boolean {
  const status = (err as { $metadata?: { httpStatusCode?: number } })?.$metadata?.httpStatusCode;
  return status !== undefined && status >= 500;
}

/** The endpoint could not be reached or answered nothing (no AWS error came back). */
export function isNetworkError(err: unknown): boolean {
  const name = errorName(err);
  if (/^E[A-Z]+$/.test(name)) return true;
  const e = err as { $metadata?: { httpStatusCode?: number }; name?: string };
  return e?.$metadata?.httpStatusCode === undefined && (name === "TimeoutError" || name === "RequestTimeout" || /socket|network|timed? ?out/i.test(reasonOf(err)));
}

/** A GeoWatchError naming what failed; secrets never appear (the SDK's errors carry none). */
export function awsError(err: unknown, what: string): GeoWatchError {
  if (err instanceof GeoWatchError) return err;
  const name = errorName(err);
  const msg = `${what}: ${name}: ${reasonOf(err)}`;
  if (name === "ResourceNotFoundException") return new GeoWatchError("NOT_FOUND", msg, { backend: BACKEND, cause: err, retryable: true });
  if (/AccessDenied|UnrecognizedClient|InvalidSignature|ExpiredToken|CredentialsProviderError|NotAuthorized/.test(name) || /credential/i.test(msg)) {
    return new GeoWatchError("AUTH", msg, { backend: BACKEND, cause: err, retryable: false });
  }
  const retryable = isThrottleOr5xx(err) || isNetworkError(err);
  return new GeoWatchError(retryable ? "CONNECT" : "SEND", msg, { backend: BACKEND, cause: err, retryable });
}
