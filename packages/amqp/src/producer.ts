import { randomUUID } from "node:crypto";
import { GeoWatchError, guardProducer, type ManagedProducer, type Metadata, type OutRecord, type Producer, type SendResult } from "@geowatch/core";
import type { ChannelModel, ConfirmChannel, Options } from "amqplib";
import { amqpError, BACKEND, closeQuietly, loggerOf, openConnection, type AmqpContext } from "./connection.js";
import { KEY_HEADER } from "./consumer.js";
import { PLACEHOLDER, resolveAmqpOptions, type AmqpOptions } from "./options.js";

interface Session {
  conn: ChannelModel;
  ch: ConfirmChannel;
  /** Message ids the server returned as unroutable (mandatory); the confirm that follows reads them. */
  returned: Set<string>;
  open: boolean;
}

/** Fills `{actiontype}.{targettype}` from the record's metadata; a dotted name reads nested fields. */
export function routingKeyFor(template: string, metadata: Metadata | undefined): string {
  return template.replace(PLACEHOLDER, (_, path: string) => {
    let cur: unknown = metadata;
    for (const part of path.split(".")) cur = cur !== null && typeof cur === "object" ? (cur as Record<string, unknown>)[part] : undefined;
    if (cur === undefined || cur === null || cur === "") {
      throw new GeoWatchError("SEND", `routing key "${template}" needs metadata.${path}, which the record does not have`, {
        backend: BACKEND,
        path: `metadata.${path}`,
      });
    }
    return String(cur);
  });
}

/**
 * Publishes to an exchange with publisher confirms: each record's result comes from the broker's
 * ack or nack of that message. Persistent by default.
 */
export function createAmqpProducer(options: AmqpOptions, ctx?: AmqpContext): Producer {
  const o = resolveAmqpOptions(options, ctx?.secret);
  const log = loggerOf(ctx);
  const target = o.exchange ? `exchange "${o.exchange}"` : "the default exchange";
  let session: Session | undefined;
  let opening: Promise<Session> | undefined;
  /** The last failed attempt to (re)open the connection, until one succeeds. */
  let unreachable: string | undefined;

  async function open(): Promise<Session> {
    const conn = await openConnection(o, `producer to ${target}`);
    try {
      const ch = await conn.createConfirmChannel();
      const s: Session = { conn, ch, returned: new Set(), open: true };
      ch.on("error", () => {});
      ch.on("return", (msg: { properties: { messageId?: string } }) => {
        if (msg.properties.messageId) s.returned.add(msg.properties.messageId);
      });
      const drop = () => {
        s.open = false;
        if (session === s) session = undefined;
        void closeQuietly(conn);
      };
      ch.on("close", drop);
      conn.on("close", drop);
      return s;
    } catch (err) {
      await closeQuietly(conn);
      throw amqpError(err, `opening a confirm channel to ${target}`, o.where);
    }
  }

  /** The open session, or a new one when the last was lost (one open at a time for concurrent sends). */
  function ready(): Promise<Session> {
    if (session?.open) return Promise.resolve(session);
    opening ??= open()
      .then(
        (s) => {
          session = s;
          unreachable = undefined;
          return s;
        },
        (err: unknown) => {
          unreachable = err instanceof Error ? err.message : String(err);
          throw err;
        },
      )
      .finally(() => {
        opening = undefined;
      });
    return opening;
  }

  function waitDrain(s: Session): Promise<void> {
    return new Promise((resolve) => {
      const done = () => {
        s.ch.off("drain", done);
        s.ch.off("close", done);
        resolve();
      };
      s.ch.on("drain", done);
      s.ch.on("close", done);
    });
  }

  function publishOne(s: Session, r: OutRecord): { sent: Promise<SendResult>; full: boolean } {
    let routingKey: string;
    try {
      routingKey = r.topic ?? routingKeyFor(o.routingKey, r.metadata);
    } catch (err) {
      return { sent: Promise.resolve({ ok: false, error: err as Error, retryable: false }), full: false };
    }
    const messageId = randomUUID();
    const headers: Record<string, string> = { ...r.headers };
    if (r.key !== undefined) headers[KEY_HEADER] = r.key;
    const props: Options.Publish = {
      persistent: o.persistent,
      mandatory: o.mandatory,
      messageId,
      timestamp: Math.floor(Date.now() / 1000),
      headers,
      ...(r.contentType !== undefined && { contentType: r.contentType }),
    };
    const body = typeof r.value === "string" ? Buffer.from(r.value, "utf8") : Buffer.from(r.value.buffer, r.value.byteOffset, r.value.byteLength);
    let full = false;
    const sent = new Promise<SendResult>((resolve) => {
      try {
        full = !s.ch.publish(o.exchange, routingKey, body, props, (err: unknown) => {
          if (err) {
            const why = err instanceof Error ? err.message : "the broker nacked it";
            resolve({ ok: false, retryable: true, error: new GeoWatchError("SEND", `publish to ${target} with key "${routingKey}" not confirmed: ${why}`, { backend: BACKEND, cause: err, retryable: true }) });
          } else if (s.returned.delete(messageId)) {
            resolve({ ok: false, retryable: false, error: new GeoWatchError("SEND", `no queue is bound to ${target} for key "${routingKey}"`, { backend: BACKEND }) });
          } else {
            resolve({ ok: true, id: messageId });
          }
        });
      } catch (err) {
        resolve({ ok: false, retryable: true, error: amqpError(err, `publish to ${target}`, o.where) });
      }
    });
    return { sent, full };
  }

  return {
    capabilities: { batching: true },
    health: () => (unreachable === undefined ? { ok: true } : { ok: false, error: unreachable }),
    async connect(): Promise<void> {
      await ready();
    },
    async send(records: OutRecord[]): Promise<SendResult[]> {
      const s = await ready();
      const pending: Array<Promise<SendResult>> = [];
      for (const r of records) {
        const { sent, full } = publishOne(s, r);
        pending.push(sent);
        // Respect the socket's backpressure instead of buffering the whole batch in memory.
        if (full && s.open) await waitDrain(s);
      }
      const results = await Promise.all(pending);
      const failed = results.filter((x) => !x.ok).length;
      if (failed > 0) log.debug("amqp: some records were not confirmed", { backend: BACKEND, failed, of: records.length });
      return results;
    },
    async ensureTopic(topic: string, opts: { create: boolean }): Promise<void> {
      const s = await ready();
      // A failed check closes the channel it ran on, so checks get a channel of their own.
      const ch = await s.conn.createChannel();
      ch.on("error", () => {});
      const what = o.exchange === "" ? `queue "${topic}"` : `exchange "${topic}"`;
      try {
        if (o.exchange === "") {
          if (opts.create) await ch.assertQueue(topic, { durable: o.durable });
          else await ch.checkQueue(topic);
        } else if (opts.create) {
          await ch.assertExchange(topic, o.exchangeType, { durable: o.durable });
        } else {
          await ch.checkExchange(topic);
        }
      } catch (err) {
        throw amqpError(err, `${opts.create ? "declaring" : "checking"} ${what}`, o.where);
      } finally {
        await closeQuietly(ch);
      }
    },
    async close(): Promise<void> {
      const s = session ?? (await opening?.catch(() => undefined));
      session = undefined;
      if (s?.open) {
        try {
          await s.ch.waitForConfirms();
        } catch {
          // Unconfirmed messages already reported their failure to send().
        }
      }
      await closeQuietly(s?.conn);
    },
  };
}

/**
 * An AMQP producer wrapped in core's runtime layer (connect once with retries, refuse calls after close, close
 * once), for use without a config. The backend definition hands the runtime the raw object instead.
 */
export function amqpProducer(options: AmqpOptions, ctx?: AmqpContext): ManagedProducer {
  return guardProducer(createAmqpProducer(options, ctx), { name: "amqp producer", backend: BACKEND, ...(ctx?.logger && { logger: ctx.logger }) });
}
