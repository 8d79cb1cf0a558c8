// The test SQS: env GEOWATCH_MOTO_ENDPOINT (test-all.sh sources .servers/env/moto.env, which
// `bash .ci/servers/moto.sh start` writes; run that first when testing by hand).
import { readFileSync } from "node:fs";
import { fileURLToPath } from "node:url";
import { CreateQueueCommand, DeleteQueueCommand, SQSClient } from "@aws-sdk/client-sqs";
import { requireEnv } from "@geowatch/testkit";

const ENV_FILE = fileURLToPath(new URL("../../../.servers/env/moto.env", import.meta.url));
export const HINT = "Start the test server first: `bash .ci/servers/moto.sh start` (from the repo root), then `source .servers/env/moto.env`.";

// A shell that has not sourced the env file still finds a running server.
try {
  for (const m of readFileSync(ENV_FILE, "utf8").matchAll(/^export (\w+)=(.*)$/gm)) process.env[m[1]!] ??= m[2]!.trim();
} catch {
  // No env file: requireEnv below fails with the hint.
}

export const endpoint = () => requireEnv("GEOWATCH_MOTO_ENDPOINT", HINT);
export const region = () => process.env.AWS_REGION ?? "us-east-1";

/** A raw SDK client for setup and inspection (the package under test is not used for this). */
export const admin = () => new SQSClient({ endpoint: endpoint(), region: region() });

export const freshName = (tag: string) => `gw-${tag}-${Date.now().toString(36)}-${Math.random().toString(36).slice(2, 8)}`;

export async function createQueue(name: string, attributes: Record<string, string> = {}): Promise<string> {
  const c = admin();
  try {
    const out = await c.send(new CreateQueueCommand({ QueueName: name, Attributes: attributes }));
    return out.QueueUrl!;
  } catch (err) {
    throw new Error(`[sqs tests] cannot create queue at ${endpoint()}: ${(err as Error).message}. ${HINT}`);
  } finally {
    c.destroy();
  }
}

export async function deleteQueue(url: string): Promise<void> {
  const c = admin();
  await c.send(new DeleteQueueCommand({ QueueUrl: url })).catch(() => undefined);
  c.destroy();
}
