import { GeoWatchError, type ErrorCode, type Logger } from "@geowatch/core";
import { connect, type ChannelModel } from "amqplib";
import type { ResolvedAmqpOptions, SecretLookup } from "./options.js";

export const BACKEND = "amqp";

const silent: Logger = { debug() {}, info() {}, warn() {}, error() {} };

/** What a factory takes besides its options; the runtime passes its BackendContext, which fits. */
export interface AmqpContext {
  logger?: Logger;
  /** Node name, for logs. */
  name?: string;
  /** Reads `GEOWATCH_AMQP_URL` / `GEOWATCH_AMQP_PASSWORD`; default `process.env`. */
  secret?: SecretLookup;
}

export function loggerOf(ctx: AmqpContext | undefined): Logger {
  return ctx?.logger ?? silent;
}

const NETWORK = new Set(["ECONNREFUSED", "ECONNRESET", "ETIMEDOUT", "EHOSTUNREACH", "ENETUNREACH", "ENOTFOUND", "EAI_AGAIN", "EPIPE"]);

/** AMQP reply code of an amqplib error (403 access refused, 404 not found, 406 precondition failed...). */
export function replyCode(err: unknown): number | undefined {
  const code = (err as { code?: unknown } | undefined)?.code;
  if (typeof code === "number") return code;
  const m = /\b(\d{3}) \([A-Z-]+\)/.exec(err instanceof Error ? err.message : String(err));
  return m ? Number(m[1]) : undefined;
}

/** A GeoWatchError naming what failed, where (no password) and why. */
export function amqpError(err: unknown, what: string, where: string): GeoWatchError {
  if (err instanceof GeoWatchError) return err;
  const message = err instanceof Error ? err.message : String(err);
  const sys = (err as { code?: unknown } | undefined)?.code;
  const reply = replyCode(err);
  let code: ErrorCode = "CONNECT";
  let retryable = true;
  let why = message;
  if (typeof sys === "string" && NETWORK.has(sys)) {
    why = `server unreachable (${sys})`;
  } else if (reply === 403 || /ACCESS.REFUSED/.test(message)) {
    code = "AUTH";
    retryable = false;
    why = "access refused: wrong user name or password, or no permission on the vhost";
  } else if (reply === 530) {
    code = "AUTH";
    retryable = false;
    why = `not allowed (${serverText(message)})`;
  } else if (reply === 404) {
    code = "NOT_FOUND";
    retryable = false;
    why = `does not exist (${serverText(message)})`;
  } else if (reply === 406) {
    code = "CONFIG";
    retryable = false;
    why = `declared differently on the server (${serverText(message)})`;
  } else if (/timeout|timed out/i.test(message)) {
    code = "TIMEOUT";
  }
  return new GeoWatchError(code, `${what} on ${where}: ${why}`, { backend: BACKEND, cause: err, retryable });
}

/** The server's own words from an amqplib close error (`NOT_FOUND - no queue 'x' in vhost '/'`). */
function serverText(message: string): string {
  const m = /with message "([^"]*)"/.exec(message);
  return m?.[1] ?? message;
}

/** Opens a connection, turning failures into clear errors. */
export async function openConnection(o: ResolvedAmqpOptions, role: string): Promise<ChannelModel> {
  let conn: ChannelModel;
  try {
    const url = new URL(o.connectUrl);
    url.searchParams.set("heartbeat", String(o.heartbeat));
    conn = await connect(url.href, { timeout: o.connectTimeoutMs, clientProperties: { connection_name: `geowatch ${role}` } });
  } catch (err) {
    throw amqpError(err, `cannot connect ${role}`, o.where);
  }
  // Without a listener an 'error' event would crash the process; 'close' follows and drives recovery.
  conn.on("error", () => {});
  return conn;
}

/** Closes a connection or channel, ignoring the errors of one already gone. */
export async function closeQuietly(conn: { close(): Promise<void> } | undefined): Promise<void> {
  if (!conn) return;
  try {
    await conn.close();
  } catch {
    // Already closed by the server or the network; nothing is left to release.
  }
}

/** Exponential backoff with jitter, capped. */
export function backoff(attempt: number, maxMs: number): number {
  const ceiling = Math.min(maxMs, 100 * 2 ** Math.max(0, attempt - 1));
  return Math.round(ceiling / 2 + Math.random() * (ceiling / 2));
}

