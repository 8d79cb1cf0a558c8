import { GeoWatchError } from "@geowatch/core";
import type { ErrorCode, Logger } from "@geowatch/core";
import type { Kafka, KafkaConfig, SASLOptions } from "kafkajs";
import { loadKafkajs } from "./kafkajs-fixes.js";
import { brokersOf } from "./options.js";
import type { KafkaOptions } from "./options.js";

/** Builds the kafkajs client from options; kafkajs logs go to the GeoWatch logger (warnings and errors only). */
export function createKafka(
  options: KafkaOptions,
  logger?: Logger,
  secret: (ref: string) => string | undefined = (ref) => process.env[ref],
): { kafka: Kafka; brokers: string[] } {
  const brokers = brokersOf(options);
  // kafkajs is required only now, after its fixes are in place (see kafkajs-fixes.ts).
  const { Kafka: KafkaClient, logLevel } = loadKafkajs(logger);
  const config: KafkaConfig = {
    clientId: options.clientId ?? "geowatch",
    brokers,
    connectionTimeout: options.connectionTimeout ?? 3000,
    // The core retries a failed connect with backoff; kafkajs' own retries only need to ride out blips.
    retry: { retries: 3, initialRetryTime: 200, maxRetryTime: 2000 },
    logLevel: logLevel.WARN,
    logCreator: () => (entry) => {
      if (!logger) return;
      const { message, timestamp: _t, ...fields } = entry.log;
      // We cap the idempotent producer's retries on purpose (at-least-once; the core retries the batch).
      if (message.startsWith("Limiting retries for the idempotent producer")) return;
      // kafkajs logs recoverable protocol errors (a coordinator still loading) as ERROR and retries them;
      // what is fatal reaches the caller as a thrown error, so its log lines are warnings here.
      logger.warn(`kafkajs: ${message}`, { namespace: entry.namespace, ...fields });
    },
  };
  const ssl = options.ssl;
  if (ssl !== undefined && ssl !== false) config.ssl = ssl === true ? true : { ...ssl };
  if (options.sasl) {
    const username = options.sasl.username ?? secret("GEOWATCH_KAFKA_USERNAME");
    const password = options.sasl.password ?? secret("GEOWATCH_KAFKA_PASSWORD");
    if (!username || !password) {
      throw new GeoWatchError(
        "CONFIG",
        "sasl needs a username and password (options or env GEOWATCH_KAFKA_USERNAME / GEOWATCH_KAFKA_PASSWORD)",
        { backend: "kafka", path: "sasl" },
      );
    }
    config.sasl = { mechanism: options.sasl.mechanism, username, password } as SASLOptions;
  }
  return { kafka: new KafkaClient(config), brokers };
}

interface KafkaJsLike {
  name?: string;
  message?: string;
  type?: string;
  retriable?: boolean;
  cause?: unknown;
  originalError?: unknown;
}

/** The innermost kafkajs error (retries wrap the real cause). */
function rootOf(err: unknown): KafkaJsLike {
  let e = err as KafkaJsLike;
  for (let i = 0; i < 10; i++) {
    const inner = (e?.originalError ?? e?.cause) as KafkaJsLike | undefined;
    if (!inner || typeof inner !== "object" || inner === e) break;
    e = inner;
  }
  return e ?? {};
}

function anyInChain(err: unknown, test: (e: KafkaJsLike) => boolean): boolean {
  let e = err as KafkaJsLike | undefined;
  for (let i = 0; i < 10 && e && typeof e === "object"; i++) {
    if (test(e)) return true;
    e = (e.originalError ?? e.cause) as KafkaJsLike | undefined;
  }
  return false;
}

const REBALANCE_TYPES = new Set(["REBALANCE_IN_PROGRESS", "ILLEGAL_GENERATION", "UNKNOWN_MEMBER_ID", "NOT_COORDINATOR"]);

/** True when a commit failed because the group is rebalancing (the new owner re-reads from the last commit). */
export function isRebalanceError(err: unknown): boolean {
  return anyInChain(err, (e) => e.type !== undefined && REBALANCE_TYPES.has(e.type));
}

/** Maps a kafkajs error onto a GeoWatchError naming what failed, the brokers and the cause. */
export function kafkaError(err: unknown, what: string, brokers: string[]): GeoWatchError {
  if (err instanceof GeoWatchError) return err;
  const root = rootOf(err);
  const reason = root.message ?? String(err);
  const where = brokers.join(",");
  let code: ErrorCode = "SEND";
  let retryable = (err as KafkaJsLike)?.retriable ?? root.retriable ?? true;
  let message = `${what} failed: ${reason}`;
  if (anyInChain(err, (e) => e.name === "KafkaJSSASLAuthenticationError" || e.type === "SASL_AUTHENTICATION_FAILED")) {
    code = "AUTH";
    retryable = false;
    message = `authentication to ${where} failed (check sasl username/password): ${reason}`;
  } else if (anyInChain(err, (e) => /AUTHORIZATION_FAILED$/.test(e.type ?? ""))) {
    code = "AUTH";
    retryable = false;
    message = `${what}: not authorized on ${where}: ${reason}`;
  } else if (anyInChain(err, (e) => e.type === "UNKNOWN_TOPIC_OR_PARTITION")) {
    code = "NOT_FOUND";
    retryable = false;
    message = `${what}: topic does not exist on ${where}: ${reason}`;
  } else if (
    anyInChain(err, (e) => ["KafkaJSConnectionError", "KafkaJSConnectionClosedError", "KafkaJSBrokerNotFound", "KafkaJSNoBrokerAvailableError"].includes(e.name ?? ""))
  ) {
    code = "CONNECT";
    retryable = true;
    message = `cannot reach broker ${where} (${what}): ${reason}`;
  } else if (anyInChain(err, (e) => e.name === "KafkaJSRequestTimeoutError" || e.name === "KafkaJSTimeout")) {
    code = "TIMEOUT";
    retryable = true;
    message = `${what} timed out against ${where}: ${reason}`;
  } else if (anyInChain(err, (e) => e.name === "KafkaJSServerDoesNotSupportApiKey" || e.name === "KafkaJSProtocolError" && e.type === "UNSUPPORTED_VERSION")) {
    code = "UNSUPPORTED";
    retryable = false;
    message = `${what}: broker ${where} does not support a protocol version kafkajs needs: ${reason}`;
  }
  return new GeoWatchError(code, message, { backend: "kafka", cause: err, retryable });
}
