import type { BackendDefinition } from "@geowatch/core";
import { z } from "zod";
import { optionProblems, parseOptions as parseWith } from "@geowatch/core";

/** Options of `fileProducer`. */
export interface FileProducerOptions {
  /** File the producer appends NDJSON lines to; created (with its directory) when missing. Required. Env: none. */
  path: string;
  /** `fsync` after every batch so an acknowledged send survives a crash. Default `true`. Env: none. */
  fsync?: boolean;
  /**
   * Rotate when a batch would grow the file past this many bytes: the file is renamed to
   * `<path>.<epoch ms>` and a new one started. Default: never rotate. Env: none.
   */
  rotateBytes?: number;
}

/** Options of `fileConsumer`. */
export interface FileConsumerOptions {
  /** File to follow (like `tail -F`); it may not exist yet. Required. Env: none. */
  path: string;
  /** Where committed offsets are kept (written atomically). Default `<path>.offset`. Env: none. */
  offsetPath?: string;
  /** Where to start when no offset file exists: `beginning` or `end`. Default `beginning`. Env: none. */
  startAt?: "beginning" | "end";
  /** Polling interval in ms, the fallback when `fs.watch` misses a change. Default `200`. Env: none. */
  pollMs?: number;
  /** Bytes read per chunk; a longer line is read in growing chunks. Default `1048576`. Env: none. */
  chunkBytes?: number;
}

/** Options of `fileStore`. */
export interface FileStoreOptions {
  /** Directory that holds one file per key; created when missing. Required. Env: none. */
  dir: string;
  /** `fsync` every write (and the directory after a rename). Default `true`. Env: none. */
  fsync?: boolean;
}

const path = z.string().min(1, "must be a non-empty path");

export const fileProducerSchema = z.strictObject({
  path,
  fsync: z.boolean().optional(),
  rotateBytes: z.number().int().positive().optional(),
});

export const fileConsumerSchema = z.strictObject({
  path,
  offsetPath: path.optional(),
  startAt: z.enum(["beginning", "end"]).optional(),
  pollMs: z.number().int().positive().optional(),
  chunkBytes: z.number().int().min(1024).optional(),
});

export const fileStoreSchema = z.strictObject({
  dir: path,
  fsync: z.boolean().optional(),
});

export type { OptionProblem } from "@geowatch/core";

/** Every problem of `options` against `schema`, each with its dotted path. */
export const problemsOf = optionProblems;

/** Parses options or throws one CONFIG error listing every problem with its path. */
export function parseOptions<T>(schema: z.ZodType, options: unknown, what: string): T {
  parseWith(schema, options, what, "file");
  return options as T;
}

type OptionDocs = NonNullable<BackendDefinition["options"]>;

/** Option descriptions for `geowatch backends` and the README. */
export const fileOptionDocs: OptionDocs = {
  path: { type: "string", required: true, description: "consumer/producer: the NDJSON file to follow or append to" },
  fsync: { type: "boolean", default: true, description: "producer/store: fsync before acknowledging a write" },
  rotateBytes: { type: "integer", description: "producer: rotate to `<path>.<epoch ms>` past this size" },
  offsetPath: { type: "string", default: "<path>.offset", description: "consumer: where the committed offset is kept" },
  startAt: { type: "beginning | end", default: "beginning", description: "consumer: start point when no offset file exists" },
  pollMs: { type: "integer", default: 200, description: "consumer: polling fallback for fs.watch, in ms" },
  chunkBytes: { type: "integer", default: 1048576, description: "consumer: bytes read per chunk" },
  dir: { type: "string", required: true, description: "store: directory holding one file per key" },
};

/** Any role's options: the backend validates before it knows which role a node takes. */
export const fileAnySchema = z
  .strictObject({
    ...fileProducerSchema.shape,
    ...fileConsumerSchema.shape,
    ...fileStoreSchema.shape,
    path: path.optional(),
    dir: path.optional(),
  })
  .refine((o) => o.path !== undefined || o.dir !== undefined, {
    message: "set `path` (consumer, producer) or `dir` (store)",
    path: ["path"],
  });
