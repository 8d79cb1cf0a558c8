import {
  ChangeMessageVisibilityBatchCommand, DeleteMessageBatchCommand, ReceiveMessageCommand,
} from "@aws-sdk/client-sqs";
import type { SQSClient } from "@aws-sdk/client-sqs";
import { GeoWatchError, LeaseKeeper, backoffMs, jsonLogger, reasonOf, sleep, waitForWake } from "@geowatch/core";
import type { BackendHealth, Consumer, ConsumerCapabilities, InRecord, Logger, ReceiveOptions } from "@geowatch/core";
import { BACKEND, Health, awsError, isFifo, isTransient, makeClient, queueAttributes, queueUrl } from "./client.js";
import { toRecord } from "./message.js";
import { parseOptions, sqsConsumerSchema } from "./options.js";
import type { SqsConsumerOptions } from "./options.js";

/** What `InRecord.handle` holds for SQS records. */
export interface SqsHandle {
  queueUrl: string;
  receiptHandle: string;
  messageId: string;
}

/** An SQS consumer: the `Consumer` contract with acks, requeue and a health report. */
export interface SqsConsumer extends Consumer {
  readonly capabilities: ConsumerCapabilities;
  ack(records: InRecord[]): Promise<void>;
  nack(records: InRecord[], opts: { requeue: boolean; reason?: string }): Promise<void>;
  caughtUp(): Promise<boolean>;
  health(): BackendHealth;
  close(): Promise<void>;
}

/** Errors per entry that mean the message is no longer ours (it was deleted, or redelivered elsewhere). */
const LOST = /ReceiptHandleIsInvalid|MessageNotInflight|InvalidParameterValue|NotInflight|InvalidReceiptHandle/i;

/**
 * Consumes an SQS queue with long polling, `receivers` ReceiveMessage calls in flight. A message is
 * deleted only when acknowledged (DeleteMessageBatch); while it is being processed its visibility is
 * extended; nack with requeue makes it visible at once. A killed process stops extending, so its
 * messages come back after the visibility timeout.
 */
export function sqsConsumer(options: SqsConsumerOptions, ctx: { logger?: Logger } = {}): SqsConsumer {
  const o = parseOptions<SqsConsumerOptions>(sqsConsumerSchema, options, "sqs consumer");
  const log = ctx.logger ?? jsonLogger();
  const waitSeconds = o.waitTimeSeconds ?? 20;
  const visibility = o.visibilityTimeoutSeconds ?? 30;
  const receivers = o.receivers ?? 3;
  const maxInFlight = o.maxInFlight ?? 200;
  const prefetch = 10 * receivers;
  const fifo = isFifo(o.queue);
  const client: SQSClient = makeClient(o, waitSeconds * 1000);
  const endpoint = o.endpoint ?? process.env.AWS_ENDPOINT_URL_SQS ?? "SQS";
  const health = new Health();
  const abort = new AbortController();
  const buffer: InRecord[] = [];
  const arrived = new Set<() => void>();
  const room = new Set<() => void>();
  let url: string | undefined;
  let pollers: Promise<void> | undefined;
  let fatal: GeoWatchError | undefined;
  let closed = false;
  /** Messages asked for by receives in flight, so together they never exceed maxInFlight. */
  let reserved = 0;

  const held = new LeaseKeeper<SqsHandle>({
    intervalMs: o.extendVisibility === false ? 0 : Math.max(1000, Math.floor((visibility * 1000) / 3)),
    key: (h) => h.receiptHandle,
    maxHoldMs: o.maxHoldMs ?? 3_600_000,
    extend: (handles) => changeVisibility(handles, visibility),
    onError: (err) => log.warn("visibility extension failed; trying again", { backend: BACKEND, queue: o.queue, error: reasonOf(err) }),
  });

  const wake = (set: Set<() => void>) => {
    for (const w of [...set]) w();
  };

  /** Sets the visibility of `handles`; returns those whose receipt is no longer valid. */
  async function changeVisibility(handles: SqsHandle[], seconds: number): Promise<SqsHandle[]> {
    const lost: SqsHandle[] = [];
    await Promise.all(
      chunks(handles, 10).map(async (chunk) => {
        let out;
        try {
          out = await client.send(
            new ChangeMessageVisibilityBatchCommand({
              QueueUrl: chunk[0]!.queueUrl,
              Entries: chunk.map((h, i) => ({ Id: String(i), ReceiptHandle: h.receiptHandle, VisibilityTimeout: seconds })),
            }),
          );
          health.ok();
        } catch (err) {
          health.failed(err);
          throw awsError(err, `changing the visibility of ${chunk.length} message(s) in queue "${o.queue}"`);
        }
        for (const f of out.Failed ?? []) {
          const h = chunk[Number(f.Id)];
          if (h && LOST.test(f.Code ?? "")) lost.push(h);
          else if (h) log.warn("visibility change failed", { backend: BACKEND, queue: o.queue, code: f.Code, error: f.Message });
        }
      }),
    );
    return lost;
  }

  async function connect(): Promise<string> {
    if (closed) throw new GeoWatchError("CLOSED", `consumer for queue "${o.queue}" is closed`, { backend: BACKEND });
    if (url) return url;
    try {
      url = await queueUrl(client, o.queue, abort.signal);
      health.ok();
    } catch (err) {
      health.failed((err as Error).cause ?? err);
      throw err;
    }
    return url;
  }

  async function poll(queue: string): Promise<void> {
    let failures = 0;
    while (!abort.signal.aborted) {
      // Received but not yet handed out counts against the prefetch bound: messages waiting in the buffer
      // only burn their visibility timeout (and extension calls).
      const ask = Math.min(10, maxInFlight - held.size - reserved, prefetch - buffer.length - reserved);
      if (ask <= 0) {
        await waitForWake(1000, abort.signal, room);
        continue;
      }
      reserved += ask;
      try {
        const out = await client.send(
          new ReceiveMessageCommand({
            QueueUrl: queue,
            MaxNumberOfMessages: ask,
            WaitTimeSeconds: waitSeconds,
            VisibilityTimeout: visibility,
            MessageAttributeNames: ["All"],
            MessageSystemAttributeNames: ["ApproximateReceiveCount", "SentTimestamp", "MessageGroupId"],
          }),
          { abortSignal: abort.signal },
        );
        health.ok();
        if (failures > 0) log.info("receiving again", { backend: BACKEND, queue: o.queue, after: failures });
        failures = 0;
        fatal = undefined;
        const messages = (out.Messages ?? []).filter((m) => m.ReceiptHandle);
        if (messages.length === 0) continue;
        const handles = messages.map((m): SqsHandle => ({ queueUrl: queue, receiptHandle: m.ReceiptHandle!, messageId: m.MessageId ?? "" }));
        if (abort.signal.aborted) {
          await changeVisibility(handles, 0).catch(() => undefined);
          return;
        }
        held.track(handles);
        messages.forEach((m, i) => buffer.push(toRecord(m, handles[i], fifo)));
        wake(arrived);
      } catch (err) {
        if (abort.signal.aborted) return;
        failures++;
        health.failed(err);
        const e = awsError(err, `receiving from queue "${o.queue}"`);
        if (!isTransient(err)) fatal = e;
        // One line when the trouble starts, then every 20th failure: an outage must not flood the log.
        if (failures === 1 || failures % 20 === 0) log.warn("receive failed; retrying", { backend: BACKEND, queue: o.queue, failures, error: reasonOf(e) });
        await sleep(backoffMs(failures, 200, 5000), abort.signal);
      } finally {
        reserved -= ask;
      }
    }
  }

  const handlesOf = (records: InRecord[]): SqsHandle[] =>
    records.map((r) => {
      const h = r.handle as Partial<SqsHandle> | undefined;
      if (typeof h?.receiptHandle !== "string" || typeof h.queueUrl !== "string") {
        throw new GeoWatchError("VALIDATE", "record has no SQS handle (was it received from an SQS consumer?)", { backend: BACKEND });
      }
      return h as SqsHandle;
    });

  const settle = (records: InRecord[]): SqsHandle[] => {
    const handles = handlesOf(records);
    const wasFull = held.size >= maxInFlight;
    held.forget(handles);
    if (wasFull && held.size < maxInFlight) wake(room);
    return handles;
  };

  async function remove(handles: SqsHandle[]): Promise<void> {
    await Promise.all(
      chunks(handles, 10).map(async (chunk) => {
        let entries = chunk.map((h, i) => ({ Id: String(i), ReceiptHandle: h.receiptHandle }));
        for (let attempt = 1; entries.length > 0; attempt++) {
          let out;
          try {
            out = await client.send(new DeleteMessageBatchCommand({ QueueUrl: chunk[0]!.queueUrl, Entries: entries }));
            health.ok();
          } catch (err) {
            health.failed(err);
            throw awsError(err, `deleting ${entries.length} acknowledged message(s) from queue "${o.queue}"`);
          }
          const retry = new Set<string>();
          for (const f of out.Failed ?? []) {
            if (LOST.test(f.Code ?? "")) {
              // The visibility ran out and another receive has it now: it will be delivered again (a duplicate).
              log.warn("acknowledged message could not be deleted: its receipt is no longer valid", { backend: BACKEND, queue: o.queue, code: f.Code });
            } else if (!f.SenderFault && attempt < 4) retry.add(f.Id!);
            else throw new GeoWatchError("SEND", `deleting a message from queue "${o.queue}" failed: ${f.Code}: ${f.Message ?? ""}`, { backend: BACKEND, retryable: !f.SenderFault });
          }
          entries = entries.filter((e) => retry.has(e.Id));
          if (entries.length > 0) await sleep(backoffMs(attempt, 100, 2000));
        }
      }),
    );
  }

  return {
    capabilities: { acks: true, batching: true, ordering: "none" },
    async connect() {
      await connect();
    },
    health: () => health.report(endpoint),
    async receive(max: number, opts: ReceiveOptions): Promise<InRecord[]> {
      const queue = await connect();
      pollers ??= Promise.all(Array.from({ length: receivers }, () => poll(queue))).then(() => undefined);
      if (max <= 0 || opts.signal?.aborted) return [];
      const deadline = Date.now() + Math.max(0, opts.waitMs);
      while (buffer.length === 0) {
        if (fatal) throw fatal;
        const left = deadline - Date.now();
        if (left <= 0 || closed || opts.signal?.aborted) return [];
        await waitForWake(left, opts.signal, arrived);
      }
      const out = buffer.splice(0, Math.floor(max));
      wake(room);
      return out;
    },
    async ack(records: InRecord[]) {
      if (records.length > 0) await remove(settle(records));
    },
    async nack(records: InRecord[], opts: { requeue: boolean; reason?: string }) {
      const handles = settle(records);
      // Without requeue the message stays invisible until its timeout runs out: the queue's redrive
      // policy counts the receive and moves it to its dead-letter queue after maxReceiveCount.
      if (opts.requeue && handles.length > 0) await changeVisibility(handles, 0);
    },
    async caughtUp() {
      if (buffer.length > 0) return false;
      const queue = await connect();
      const a = await queueAttributes(client, queue, ["ApproximateNumberOfMessages", "ApproximateNumberOfMessagesNotVisible", "ApproximateNumberOfMessagesDelayed"]).catch(
        (err: unknown) => {
          health.failed(err);
          throw awsError(err, `reading the attributes of queue "${o.queue}"`);
        },
      );
      const n = (k: string) => Number(a[k] ?? "0");
      // Invisible messages this consumer does not hold are on their way to it (a receive in flight) or held
      // elsewhere and may come back: not caught up until they are gone.
      return n("ApproximateNumberOfMessages") === 0 && n("ApproximateNumberOfMessagesDelayed") === 0 && n("ApproximateNumberOfMessagesNotVisible") <= held.size;
    },
    /** Stops receiving and makes every message held but not settled visible again at once. */
    async close() {
      if (closed) return;
      closed = true;
      abort.abort();
      wake(arrived);
      wake(room);
      const left = held.stop();
      buffer.length = 0;
      try {
        if (left.length > 0) await changeVisibility(left, 0);
      } catch (err) {
        log.warn("could not hand back held messages; they return after their visibility timeout", { backend: BACKEND, queue: o.queue, messages: left.length, error: reasonOf(err) });
      } finally {
        await pollers;
        client.destroy();
      }
    },
  };
}

function chunks<T>(items: T[], size: number): T[][] {
  const out: T[][] = [];
  for (let i = 0; i < items.length; i += size) out.push(items.slice(i, i + size));
  return out;
}
