/** Options of the file backend's roles: one zod schema per role gives validation, types, docs and JSON Schema. */
import { parseOptions as parseWith } from "@geowatch/core";
import { z } from "zod";

const path = z.string().min(1, "must be a non-empty path").meta({ path: true });

export const fileProducerSchema = z.strictObject({
  path: path.describe("File the producer appends NDJSON lines to; created (with its directory) when missing."),
  fsync: z.boolean().optional().meta({ default: true }).describe("Every batch on disk before send returns (the file is opened O_SYNC), so an acknowledged send survives a crash."),
  rotateBytes: z.number().int().positive().optional().describe("Rotate when a batch would grow the file past this many bytes: it is renamed to `<path>.<epoch ms>`. Default: never."),
});

export const fileConsumerSchema = z.strictObject({
  path: path.describe("File to follow (like `tail -F`); it may not exist yet."),
  offsetPath: path.optional().meta({ default: "<path>.offset" }).describe("Where the committed byte offset is kept (written atomically)."),
  startAt: z.enum(["beginning", "end"]).optional().meta({ default: "beginning" }).describe("Where to start when no offset file exists."),
  pollMs: z.number().int().positive().optional().meta({ default: 200 }).describe("Polling interval in ms, the fallback when fs.watch misses a change."),
  chunkBytes: z.number().int().min(1024).optional().meta({ default: 1048576 }).describe("Bytes read per chunk; a longer line is read in growing chunks."),
  commitIntervalMs: z.number().int().min(0).optional().meta({ default: 0 }).describe("Write the offset file at most once per this many ms: commits in between move the offset in memory only, the newest is written when the interval ends and on close. A crash then re-reads what was committed in the last interval (duplicates, never loss). 0: every commit is written before it returns."),
});

export const fileStoreSchema = z.strictObject({
  dir: path.describe("Directory that holds one file per key; created when missing."),
  fsync: z.boolean().optional().meta({ default: true }).describe("fsync every write (and the directory after a rename)."),
});

/** Options of `fileProducer`. */
export type FileProducerOptions = z.input<typeof fileProducerSchema>;
/** Options of `fileConsumer`. */
export type FileConsumerOptions = z.input<typeof fileConsumerSchema>;
/** Options of `fileStore`. */
export type FileStoreOptions = z.input<typeof fileStoreSchema>;

/** Parses options or throws one CONFIG error listing every problem with its path. */
export function parseOptions<T>(schema: z.ZodType, options: unknown, what: string): T {
  return parseWith(schema as z.ZodType<T>, options, what, "file");
}
