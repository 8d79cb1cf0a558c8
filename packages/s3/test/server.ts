// Where the test S3 is: env GEOWATCH_MOTO_ENDPOINT (and the AWS_* test credentials), else the env file
// `.ci/servers/moto.sh start` writes. A missing server fails the tests with how to start it.
import { readFileSync } from "node:fs";
import { fileURLToPath } from "node:url";
import { CreateBucketCommand, DeleteBucketCommand, DeleteObjectsCommand, ListObjectsV2Command, S3Client } from "@aws-sdk/client-s3";
import { requireEnv } from "@geowatch/testkit";

const ENV_FILE = fileURLToPath(new URL("../../../.servers/env/moto.env", import.meta.url));

// The env file supplies what the environment lacks (test-all.sh sources it; a bare `pnpm test` does not).
try {
  for (const m of readFileSync(ENV_FILE, "utf8").matchAll(/^export (\w+)=(.*)$/gm)) process.env[m[1]!] ??= m[2]!.trim();
} catch {
  // No env file: requireEnv below says how to start the server.
}

export function endpoint(): string {
  return requireEnv("GEOWATCH_MOTO_ENDPOINT", "Start the test server first: `bash .ci/servers/moto.sh start` (from the repo root), then `source .servers/env/moto.env`.");
}

export function rawClient(): S3Client {
  return new S3Client({ endpoint: endpoint(), region: process.env.AWS_REGION ?? "us-east-1", forcePathStyle: true });
}

export const fresh = (tag: string) => `gw-${tag}-${Date.now().toString(36)}-${Math.random().toString(36).slice(2, 8)}`;

/** A new bucket; `drop` empties and deletes it. */
export async function bucket(tag: string): Promise<{ name: string; drop: () => Promise<void> }> {
  const name = fresh(tag).toLowerCase();
  const c = rawClient();
  await c.send(new CreateBucketCommand({ Bucket: name }));
  return {
    name,
    async drop() {
      for (;;) {
        const page = await c.send(new ListObjectsV2Command({ Bucket: name }));
        const keys = (page.Contents ?? []).map((o) => ({ Key: o.Key! }));
        if (keys.length === 0) break;
        await c.send(new DeleteObjectsCommand({ Bucket: name, Delete: { Objects: keys } }));
      }
      await c.send(new DeleteBucketCommand({ Bucket: name }));
      c.destroy();
    },
  };
}
