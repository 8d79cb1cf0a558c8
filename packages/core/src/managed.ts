import { GeoWatchError, isGeoWatchError, reasonOf } from "./errors.js";
import { silentLogger } from "./logger.js";
import type { BackendHealth, Consumer, Logger, Producer, Store } from "./types.js";
import { backoffMs, sleep } from "./util.js";

/** `reconnecting`: connected once, and the backend's `health()` says the connection is down for now. */
export type LifecycleState = "idle" | "connecting" | "ready" | "reconnecting" | "failed" | "closed";

export interface ManagedOptions {
  /** Node name, for errors and logs. */
  name: string;
  /** Backend name, shown in brackets in errors. */
  backend: string;
  logger?: Logger;
  /** Connect attempts before a call fails (the next call starts over). Default 5. */
  connectTries?: number;
  /** First backoff between connect attempts in ms. Default 200. */
  connectBaseMs?: number;
  /** Longest backoff in ms. Default 10000. */
  connectMaxMs?: number;
}

/** What the runtime layer adds to every backend. */
export interface Lifecycle {
  /** The runtime's state, or `reconnecting` while a ready backend's `health()` reports not ok. */
  readonly state: LifecycleState;
  /** The last connect error, or the backend's health error while it is reconnecting. */
  readonly lastError: Error | undefined;
  /** Connects now (with retries); later calls connect lazily. */
  connect(): Promise<void>;
  close(): Promise<void>;
}

type Target = { connect?(): Promise<void>; close?(): Promise<void>; health?(): BackendHealth };

/**
 * The one runtime layer around a backend: connect once, retry a failed connect with backoff, refuse
 * calls after close, close only once. Backend code stays pure I/O.
 */
class Guard {
  state: LifecycleState = "idle";
  lastError: Error | undefined;
  private connecting: Promise<void> | undefined;
  private closing: Promise<void> | undefined;
  private readonly abort = new AbortController();

  constructor(
    private readonly target: Target,
    private readonly opts: ManagedOptions,
  ) {}

  ready(): Promise<void> | undefined {
    if (this.state === "ready") return undefined;
    if (this.state === "closed") return Promise.reject(this.closedError());
    return this.connect();
  }

  /** The backend's own health while ready; a health hook that throws counts as not ok. */
  backendHealth(): BackendHealth {
    if (this.state !== "ready" || !this.target.health) return OK;
    try {
      return this.target.health();
    } catch (err) {
      return { ok: false, error: reasonOf(err) };
    }
  }

  closedError(): GeoWatchError {
    return new GeoWatchError("CLOSED", `"${this.opts.name}" is closed`, { backend: this.opts.backend });
  }

  connect(): Promise<void> {
    if (this.state === "closed") return Promise.reject(this.closedError());
    if (this.state === "ready") return Promise.resolve();
    this.connecting ??= this.doConnect().finally(() => {
      this.connecting = undefined;
    });
    return this.connecting;
  }

  private async doConnect(): Promise<void> {
    const log = this.opts.logger ?? silentLogger;
    if (!this.target.connect) {
      this.state = "ready";
      return;
    }
    const tries = this.opts.connectTries ?? 5;
    this.state = "connecting";
    for (let attempt = 1; ; attempt++) {
      try {
        await this.target.connect();
        if ((this.state as LifecycleState) === "closed") return;
        this.state = "ready";
        this.lastError = undefined;
        if (attempt > 1) log.info("connected", { node: this.opts.name, backend: this.opts.backend, attempt });
        return;
      } catch (err) {
        this.lastError = err instanceof Error ? err : new Error(String(err));
        const final = attempt >= tries || (isGeoWatchError(err) && !err.retryable && (err.code === "CONFIG" || err.code === "AUTH"));
        log.warn("connect failed", { node: this.opts.name, backend: this.opts.backend, attempt, error: reasonOf(err) });
        if (final || this.abort.signal.aborted) {
          this.state = "failed";
          throw isGeoWatchError(err)
            ? err
            : new GeoWatchError("CONNECT", `"${this.opts.name}" could not connect after ${attempt} attempt(s): ${reasonOf(err)}`, {
                backend: this.opts.backend,
                cause: err,
                retryable: true,
              });
        }
        await sleep(backoffMs(attempt, this.opts.connectBaseMs ?? 200, this.opts.connectMaxMs ?? 10_000), this.abort.signal);
      }
    }
  }

  close(): Promise<void> {
    this.closing ??= (async () => {
      this.state = "closed";
      this.abort.abort();
      await this.target.close?.();
    })();
    return this.closing;
  }

  /** Wraps a method: connect first, refuse after close. */
  call<A extends unknown[], R>(fn: (...args: A) => Promise<R>): (...args: A) => Promise<R> {
    return (...args: A) => {
      if (this.state === "closed") return Promise.reject(this.closedError());
      const waiting = this.ready();
      return waiting ? waiting.then(() => fn(...args)) : fn(...args);
    };
  }
}

const OK: BackendHealth = { ok: true };

function lifecycle(g: Guard): Lifecycle {
  return {
    get state() {
      return g.state === "ready" && !g.backendHealth().ok ? "reconnecting" : g.state;
    },
    get lastError() {
      const h = g.backendHealth();
      return h.ok ? g.lastError : new Error(h.error ?? "connection lost; reconnecting");
    },
    connect: () => g.connect(),
    close: () => g.close(),
  };
}

export type ManagedConsumer<C extends Consumer = Consumer> = C & Lifecycle;
export type ManagedProducer<P extends Producer = Producer> = P & Lifecycle;
export type ManagedStore<S extends Store = Store> = S & Lifecycle;

const LIFECYCLE_MEMBERS = new Set(["connect", "close", "health", "capabilities", "state", "lastError"]);

/** A backend's own extra methods (a queue's `extend`) go through the guard too: connect first, refuse after close. */
function guardExtras(target: object, m: Record<string, unknown>, g: Guard): void {
  for (const k of Object.keys(target)) {
    const v = (target as Record<string, unknown>)[k];
    if (typeof v === "function" && !(k in m) && !LIFECYCLE_MEMBERS.has(k)) m[k] = g.call((v as (...a: unknown[]) => Promise<unknown>).bind(target));
  }
}

/** Wraps a consumer in the runtime layer. */
export function guardConsumer<C extends Consumer>(c: C, opts: ManagedOptions): ManagedConsumer<C> {
  const g = new Guard(c, opts);
  const m: ManagedConsumer = Object.assign(lifecycle(g), {
    capabilities: c.capabilities ?? {},
    receive: g.call(c.receive.bind(c)),
  }) as ManagedConsumer;
  if (c.ack) m.ack = g.call(c.ack.bind(c));
  if (c.nack) m.nack = g.call(c.nack.bind(c));
  if (c.commit) m.commit = g.call(c.commit.bind(c));
  if (c.caughtUp) m.caughtUp = g.call(c.caughtUp.bind(c));
  guardExtras(c, m as unknown as Record<string, unknown>, g);
  return m as ManagedConsumer<C>;
}

/** Wraps a producer in the runtime layer. */
export function guardProducer<P extends Producer>(p: P, opts: ManagedOptions): ManagedProducer<P> {
  const g = new Guard(p, opts);
  const m: ManagedProducer = Object.assign(lifecycle(g), {
    capabilities: p.capabilities ?? {},
    send: g.call(p.send.bind(p)),
  }) as ManagedProducer;
  if (p.ensureTopic) m.ensureTopic = g.call(p.ensureTopic.bind(p));
  if (p.health) m.health = () => g.backendHealth();
  guardExtras(p, m as unknown as Record<string, unknown>, g);
  return m as ManagedProducer<P>;
}

/** Wraps a store in the runtime layer. */
export function guardStore<S extends Store>(s: S, opts: ManagedOptions): ManagedStore<S> {
  const g = new Guard(s, opts);
  const m: ManagedStore = Object.assign(lifecycle(g), {
    capabilities: s.capabilities ?? {},
    write: g.call(s.write.bind(s)),
  }) as ManagedStore;
  if (s.read) m.read = g.call(s.read.bind(s));
  guardExtras(s, m as unknown as Record<string, unknown>, g);
  return m as ManagedStore<S>;
}
