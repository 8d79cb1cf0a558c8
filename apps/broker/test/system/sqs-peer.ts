// A test peer for the SQS system tests: the SQS JSON protocol spoken with fetch against the moto server
// (bash .ci/servers/moto.sh start), so what the test puts in and reads back does not go through the
// package under test. moto does not check signatures; the Authorization header only names the service.

export function motoEndpoint(): string {
  const v = process.env.GEOWATCH_MOTO_ENDPOINT;
  if (!v) throw new Error("GEOWATCH_MOTO_ENDPOINT is not set: this system test needs the moto server. From the repo root run: bash .ci/servers/moto.sh start && source .servers/env/moto.env");
  return v;
}

const AUTH = "AWS4-HMAC-SHA256 Credential=test/20260101/us-east-1/sqs/aws4_request, SignedHeaders=host, Signature=0";

export async function sqsCall<T = Record<string, unknown>>(action: string, body: Record<string, unknown>, endpoint = motoEndpoint()): Promise<T> {
  const r = await fetch(`${endpoint}/`, {
    method: "POST",
    headers: { "Content-Type": "application/x-amz-json-1.0", "X-Amz-Target": `AmazonSQS.${action}`, Authorization: AUTH },
    body: JSON.stringify(body),
    signal: AbortSignal.timeout(30_000),
  });
  const text = await r.text();
  if (!r.ok) throw new Error(`[sqs peer] ${action}: HTTP ${r.status}: ${text.slice(0, 300)}`);
  return (text ? JSON.parse(text) : {}) as T;
}

export async function createQueue(name: string): Promise<string> {
  const out = await sqsCall<{ QueueUrl: string }>("CreateQueue", { QueueName: name });
  return out.QueueUrl;
}

export async function deleteQueue(url: string): Promise<void> {
  await sqsCall("DeleteQueue", { QueueUrl: url }).catch(() => undefined);
}

/** Visible and in-flight message counts as the server reports them. */
export async function queueCounts(url: string): Promise<{ visible: number; inFlight: number }> {
  const out = await sqsCall<{ Attributes: Record<string, string> }>("GetQueueAttributes", {
    QueueUrl: url,
    AttributeNames: ["ApproximateNumberOfMessages", "ApproximateNumberOfMessagesNotVisible"],
  });
  return { visible: Number(out.Attributes.ApproximateNumberOfMessages), inFlight: Number(out.Attributes.ApproximateNumberOfMessagesNotVisible) };
}

/** Sends `{"id": i}` for i in [from, to), 10 per call, `parallel` calls at once. */
export async function sendIds(url: string, from: number, to: number, parallel = 4): Promise<void> {
  const batches: number[][] = [];
  for (let i = from; i < to; i += 10) batches.push(Array.from({ length: Math.min(10, to - i) }, (_, k) => i + k));
  let next = 0;
  await Promise.all(
    Array.from({ length: parallel }, async () => {
      while (next < batches.length) {
        const ids = batches[next++]!;
        const out = await sqsCall<{ Failed?: unknown[] }>("SendMessageBatch", {
          QueueUrl: url,
          Entries: ids.map((id) => ({ Id: String(id), MessageBody: JSON.stringify({ id }) })),
        });
        if (out.Failed?.length) throw new Error(`[sqs peer] SendMessageBatch failed entries: ${JSON.stringify(out.Failed)}`);
      }
    }),
  );
}

/** Receives and deletes everything in the queue until it stays empty for `quietMs`; returns the ids. */
export async function drainIds(url: string, quietMs = 3000): Promise<number[]> {
  const ids: number[] = [];
  let quietSince = Date.now();
  while (Date.now() - quietSince < quietMs) {
    const got = await Promise.all(
      Array.from({ length: 4 }, () =>
        sqsCall<{ Messages?: Array<{ Body: string; ReceiptHandle: string }> }>("ReceiveMessage", { QueueUrl: url, MaxNumberOfMessages: 10, WaitTimeSeconds: 1, VisibilityTimeout: 60 }),
      ),
    );
    const messages = got.flatMap((g) => g.Messages ?? []);
    if (messages.length === 0) continue;
    quietSince = Date.now();
    for (const m of messages) ids.push((JSON.parse(m.Body) as { id: number }).id);
    for (let i = 0; i < messages.length; i += 10) {
      await sqsCall("DeleteMessageBatch", { QueueUrl: url, Entries: messages.slice(i, i + 10).map((m, k) => ({ Id: String(k), ReceiptHandle: m.ReceiptHandle })) });
    }
  }
  return ids;
}

/** Missing ids of [0, n), duplicates, ids outside the range. */
export function tally(ids: number[], n: number): { distinct: number; missing: number[]; duplicates: number; foreign: number } {
  const seen = new Map<number, number>();
  let foreign = 0;
  for (const id of ids) {
    if (!Number.isInteger(id) || id < 0 || id >= n) foreign++;
    else seen.set(id, (seen.get(id) ?? 0) + 1);
  }
  const missing: number[] = [];
  for (let i = 0; i < n; i++) if (!seen.has(i)) missing.push(i);
  let duplicates = 0;
  for (const c of seen.values()) duplicates += c - 1;
  return { distinct: seen.size, missing, duplicates, foreign };
}
