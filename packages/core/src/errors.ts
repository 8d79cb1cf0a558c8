/** Error codes GeoWatch raises. */
export type ErrorCode =
  | "CONFIG"
  | "DECODE"
  | "ENCODE"
  | "VALIDATE"
  | "CONNECT"
  | "SEND"
  | "STORE"
  | "TIMEOUT"
  | "CLOSED"
  | "NOT_FOUND"
  | "AUTH"
  | "FILTER"
  | "UNSUPPORTED"
  | "SECURITY"
  /** A URL refused by a URL policy (private address, not on the allow list, bad scheme). */
  | "URL_REFUSED"
  /** An HTTP fetch failed (connection, too many redirects, body too large). */
  | "FETCH"
  /** An XML document refused or not parsed (entity declarations, size or depth limits, not well-formed). */
  | "XML";

export interface GeoWatchErrorOptions {
  /** The backend or component name shown in brackets. */
  backend?: string;
  cause?: unknown;
  /** Whether retrying the same operation may succeed. */
  retryable?: boolean;
  /** Where the problem is (a config path, a byte offset, a field). */
  path?: string;
}

/** The one error class: `[geowatch] [sqs] queue "x" does not exist`. */
export class GeoWatchError extends Error {
  readonly code: ErrorCode;
  readonly backend: string | undefined;
  readonly retryable: boolean;
  readonly path: string | undefined;

  constructor(code: ErrorCode, message: string, opts: GeoWatchErrorOptions = {}) {
    const where = opts.backend ? ` [${opts.backend}]` : "";
    super(`[geowatch]${where} ${message}`, opts.cause === undefined ? undefined : { cause: opts.cause });
    this.name = "GeoWatchError";
    this.code = code;
    this.backend = opts.backend;
    this.retryable = opts.retryable ?? false;
    this.path = opts.path;
  }
}

/** True for GeoWatch errors, optionally of one code. */
export function isGeoWatchError(err: unknown, code?: ErrorCode): err is GeoWatchError {
  return err instanceof GeoWatchError && (code === undefined || err.code === code);
}

/** Codes whose failure does not change on a retry of the same message: bad data, a refusal, an unsupported operation. */
const PERMANENT: ReadonlySet<ErrorCode> = new Set<ErrorCode>(["DECODE", "ENCODE", "VALIDATE", "UNSUPPORTED", "SECURITY", "URL_REFUSED", "XML"]);

/**
 * True when retrying the same message cannot succeed: a GeoWatchError not marked retryable whose code says the
 * message is bad (DECODE, ENCODE, VALIDATE, XML), refused (SECURITY, URL_REFUSED) or UNSUPPORTED. Sinks dead-letter
 * these at once. CONFIG is not among them (a wrong or missing destination is the operator's to fix, not the
 * message's fault), nor are foreign errors, which may be transient: those keep the usual retries.
 */
export function isPermanent(err: unknown): boolean {
  return err instanceof GeoWatchError && !err.retryable && PERMANENT.has(err.code);
}

/** A short, single-line reason for logs and dead-letter records. */
export function reasonOf(err: unknown): string {
  if (err instanceof Error) {
    const cause = err.cause instanceof Error && !err.message.includes(err.cause.message) ? `: ${err.cause.message}` : "";
    return `${err.message}${cause}`;
  }
  return String(err);
}
