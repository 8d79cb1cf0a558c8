import { GeoWatchError, guardConsumer, sleep, waitForWake, type Consumer, type InRecord, type ManagedConsumer, type ReceiveOptions } from "@geowatch/core";
import type { Channel, ChannelModel, ConsumeMessage } from "amqplib";
import { amqpError, backoff, BACKEND, closeQuietly, loggerOf, openConnection, type AmqpContext } from "./connection.js";
import { resolveAmqpOptions, type AmqpOptions } from "./options.js";

/** Header that carries `OutRecord.key` / `InRecord.key`, since AMQP has no message key. */
export const KEY_HEADER = "x-geowatch-key";

/** What `InRecord.handle` holds: the delivery tag and which channel (session) delivered it. */
export interface AmqpHandle {
  deliveryTag: number;
  channel: number;
}

interface Session {
  conn: ChannelModel;
  ch: Channel;
  id: number;
  /** False once the channel or connection closed; its deliveries are then forgotten. */
  alive: boolean;
  /** Deliveries of this channel not yet acked or nacked, by tag; acks only go to tags listed here. */
  unacked: Map<number, ConsumeMessage>;
}

/**
 * Consumes a queue, optionally declared and bound to an exchange. amqplib pushes deliveries into a
 * buffer that `receive` drains; prefetch bounds the buffer. A dropped connection is reopened with
 * backoff; deliveries of the old channel are forgotten (RabbitMQ redelivers them).
 */
export function createAmqpConsumer(options: AmqpOptions, ctx?: AmqpContext): Consumer {
  const o = resolveAmqpOptions(options, ctx?.secret);
  if (!o.queue) throw new GeoWatchError("CONFIG", "a consumer needs `queue`", { backend: BACKEND, path: "queue" });
  const queue: string = o.queue;
  const log = loggerOf(ctx);
  const closer = new AbortController();
  const buffer: Array<{ msg: ConsumeMessage; session: number }> = [];
  const waiters = new Set<() => void>();
  let session: Session | undefined;
  /** The first open in flight, so close can wait for it and close what it opened. */
  let opening: Promise<void> | undefined;
  let reconnecting: Promise<void> | undefined;
  let everConnected = false;
  let fatal: GeoWatchError | undefined;
  /** Why the last channel went away, while reconnecting. */
  let lostWhy = "connection lost";
  let sessions = 0;
  /** Set by close: a waiting receive returns at once and a lost channel is not reopened. */
  let closed = false;

  const notify = () => {
    for (const wake of [...waiters]) wake();
  };

  const waitFor = (ms: number, signal?: AbortSignal) => waitForWake(ms, signal, waiters);

  async function open(): Promise<Session> {
    const conn = await openConnection(o, `consumer of queue "${queue}"`);
    let step = `opening a channel for queue "${queue}"`;
    try {
      const ch = await conn.createChannel();
      ch.on("error", () => {}); // 'close' follows and drives recovery
      if (o.exchange) {
        step = `${o.declare ? "declaring" : "checking"} exchange "${o.exchange}"`;
        if (o.declare) await ch.assertExchange(o.exchange, o.exchangeType, { durable: o.durable });
        else await ch.checkExchange(o.exchange);
      }
      step = `${o.declare ? "declaring" : "checking"} queue "${queue}"`;
      if (o.declare) {
        await ch.assertQueue(queue, {
          durable: o.durable,
          ...(o.deadLetterExchange !== undefined && { deadLetterExchange: o.deadLetterExchange }),
          ...(o.deadLetterRoutingKey !== undefined && { deadLetterRoutingKey: o.deadLetterRoutingKey }),
        });
      } else {
        await ch.checkQueue(queue);
      }
      if (o.exchange) {
        for (const pattern of o.bindings) {
          step = `binding queue "${queue}" to exchange "${o.exchange}" with "${pattern}"`;
          await ch.bindQueue(queue, o.exchange, pattern);
        }
      }
      step = `consuming queue "${queue}"`;
      await ch.prefetch(o.prefetch);
      const s: Session = { conn, ch, id: ++sessions, alive: true, unacked: new Map() };
      conn.on("close", () => lost(s, "connection closed"));
      ch.on("close", () => lost(s, "channel closed"));
      // Deliveries may arrive before this resolves; they wait in the buffer until the session is current.
      await ch.consume(queue, (msg) => onDelivery(s, msg), { noAck: false });
      if (!s.alive) throw new Error("the connection closed while setting up the consumer");
      return s;
    } catch (err) {
      await closeQuietly(conn);
      throw amqpError(err, step, o.where);
    }
  }

  function onDelivery(s: Session, msg: ConsumeMessage | null): void {
    // null: the server cancelled the consumer (queue deleted); reopen, which reports a missing queue.
    if (msg === null) return lost(s, "consumer cancelled by the server");
    if (!s.alive) return;
    s.unacked.set(msg.fields.deliveryTag, msg);
    buffer.push({ msg, session: s.id });
    if (session === s) notify();
  }

  function lost(s: Session, why: string): void {
    if (!s.alive) return;
    s.alive = false;
    // Unacked deliveries go back to the queue with the channel; their tags mean nothing on the next one.
    s.unacked.clear();
    for (let i = buffer.length - 1; i >= 0; i--) if (buffer[i]?.session === s.id) buffer.splice(i, 1);
    void closeQuietly(s.conn);
    if (session !== s) return; // still being opened: open() reports the failure
    session = undefined;
    if (closed) return;
    lostWhy = why;
    log.warn("amqp consumer lost its channel; reconnecting", { backend: BACKEND, queue, why, node: ctx?.name });
    startReconnect();
    notify();
  }

  function startReconnect(): void {
    reconnecting ??= (async () => {
      for (let attempt = 1; !closed; attempt++) {
        await sleep(backoff(attempt, o.reconnectMaxMs), closer.signal);
        if (closed) return;
        try {
          const s = await open();
          if (closed) return void (await closeQuietly(s.conn));
          session = s;
          log.info("amqp consumer reconnected", { backend: BACKEND, queue, attempt, node: ctx?.name });
          notify();
          return;
        } catch (err) {
          const e = amqpError(err, `reconnecting to queue "${queue}"`, o.where);
          if (!e.retryable && e.code !== "NOT_FOUND") {
            fatal = e;
            notify();
            return;
          }
          if (attempt === 1 || attempt % 10 === 0) log.warn("amqp reconnect failed", { backend: BACKEND, queue, attempt, error: e.message });
        }
      }
    })().finally(() => {
      reconnecting = undefined;
    });
  }

  // The runtime layer calls connect once at a time (retrying a failure) and nothing after close; a channel
  // lost later is reopened by startReconnect.
  async function connect(): Promise<void> {
    opening = open().then((s) => {
      session = s;
      everConnected = true;
      notify();
    });
    try {
      await opening;
    } finally {
      opening = undefined;
    }
  }

  function toRecord(msg: ConsumeMessage, sessionId: number): InRecord {
    const headers: Record<string, string> = {};
    let key: string | undefined;
    for (const [k, v] of Object.entries(msg.properties.headers ?? {})) {
      if (v === undefined || v === null) continue;
      const text = typeof v === "string" ? v : Buffer.isBuffer(v) ? v.toString("utf8") : JSON.stringify(v);
      if (k === KEY_HEADER) key = text;
      else headers[k] = text;
    }
    const deliveries = msg.properties.headers?.["x-delivery-count"];
    const ts = msg.properties.timestamp as number | undefined;
    const handle: AmqpHandle = { deliveryTag: msg.fields.deliveryTag, channel: sessionId };
    return {
      value: msg.content,
      ...(key !== undefined && { key }),
      ...(Object.keys(headers).length > 0 && { headers }),
      handle,
      redeliveries: typeof deliveries === "number" ? deliveries : msg.fields.redelivered ? 1 : 0,
      ...(typeof ts === "number" && { timestamp: ts < 1e11 ? ts * 1000 : ts }),
    };
  }

  /** The live deliveries of `records`; those of an older channel are skipped (RabbitMQ redelivers them). */
  function live(records: InRecord[]): { s: Session | undefined; msgs: ConsumeMessage[] } {
    const s = session;
    const msgs: ConsumeMessage[] = [];
    let stale = 0;
    for (const r of records) {
      const h = r.handle as AmqpHandle | undefined;
      const msg = s && h && h.channel === s.id ? s.unacked.get(h.deliveryTag) : undefined;
      if (!s || !msg) {
        stale++;
        continue;
      }
      s.unacked.delete(h!.deliveryTag);
      msgs.push(msg);
    }
    if (stale > 0) log.debug("amqp: skipped settling deliveries of a closed channel", { backend: BACKEND, queue, count: stale });
    return { s, msgs };
  }

  return {
    capabilities: { acks: true, batching: true },
    connect,
    health() {
      if (fatal) return { ok: false, error: fatal.message };
      if (everConnected && !session && !closed) return { ok: false, error: `[geowatch] [amqp] consumer of queue "${queue}" on ${o.where}: ${lostWhy}; reconnecting` };
      return { ok: true };
    },
    async receive(max: number, opts: ReceiveOptions): Promise<InRecord[]> {
      if (fatal) throw fatal;
      const deadline = Date.now() + Math.max(0, opts.waitMs);
      while (buffer.length === 0 || session === undefined) {
        if (fatal) throw fatal;
        const left = deadline - Date.now();
        if (closed || left <= 0 || opts.signal?.aborted) return [];
        await waitFor(left, opts.signal);
      }
      return buffer.splice(0, Math.max(1, max)).map((b) => toRecord(b.msg, b.session));
    },
    async ack(records: InRecord[]): Promise<void> {
      const { s, msgs } = live(records);
      for (const msg of msgs) {
        try {
          s!.ch.ack(msg);
        } catch {
          // The channel closed under us; RabbitMQ redelivers the message.
        }
      }
    },
    async nack(records: InRecord[], opts: { requeue: boolean; reason?: string }): Promise<void> {
      const requeue = opts.requeue && o.requeueOnNack;
      const { s, msgs } = live(records);
      for (const msg of msgs) {
        try {
          s!.ch.nack(msg, false, requeue);
        } catch {
          // As above: a closed channel returns the message to the queue by itself.
        }
      }
    },
    async close(): Promise<void> {
      closed = true;
      closer.abort();
      notify();
      buffer.length = 0;
      await opening?.catch(() => {});
      const s = session;
      session = undefined;
      // Channel first: its close follows the acks on the same stream, where a connection close could
      // overtake them. Closing returns every unacked delivery to the queue.
      await closeQuietly(s?.ch);
      await closeQuietly(s?.conn);
      await reconnecting;
    },
  };
}

/**
 * An AMQP consumer wrapped in core's runtime layer (connect once with retries, refuse calls after close, close
 * once), for use without a config. The backend definition hands the runtime the raw object instead.
 */
export function amqpConsumer(options: AmqpOptions, ctx?: AmqpContext): ManagedConsumer {
  return guardConsumer(createAmqpConsumer(options, ctx), {
    name: `amqp consumer "${options.queue ?? ""}"`,
    backend: BACKEND,
    ...(ctx?.logger && { logger: ctx.logger }),
  });
}
