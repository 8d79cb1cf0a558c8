/** Options of the feed backend and of its HTTP server: one zod schema each gives validation, types, docs and JSON Schema. */
import { parseOptions as parseWith } from "@geowatch/core";
import { z } from "zod";

const port = z.number().int().min(0).max(65535);

/** What the HTTP server needs; the producer can run it too (`port`). */
export const feedServerSchema = z.strictObject({
  db: z.string().min(1, "must be a non-empty path").meta({ path: true }).describe("SQLite file the feed producer writes (read-only here, WAL so reads never block writes)."),
  tokensFile: z.string().min(1).meta({ path: true, secret: true }).describe("JSON file mapping each user to the token their feed URL carries (`{\"alice\": \"s3cret\"}`); reread when it changes."),
  port: port.optional().meta({ default: 0 }).describe("TCP port to listen on (0: any free port)."),
  host: z.string().min(1).optional().meta({ default: "127.0.0.1" }).describe("Address to listen on."),
  publicUrl: z.string().url().optional().describe("Base URL readers reach the server at (for the feeds' self links). Default: http://<host>:<port>."),
  title: z.string().min(1).optional().meta({ default: "GeoWatch notifications" }).describe("Feed title; the user name is appended."),
});

export const feedProducerSchema = z.strictObject({
  db: z.string().min(1, "must be a non-empty path").meta({ path: true }).describe("SQLite file that keeps the entries; created when missing."),
  maxEntries: z.number().int().positive().optional().meta({ default: 100 }).describe("Entries kept per user; older ones are dropped as new ones arrive."),
  user: z.string().min(1).optional().describe("User whose feed receives records without `metadata.recipient` (a site-wide feed). Without it such a record fails, not retried."),
  titleTemplate: z.string().min(1).optional().meta({ default: "{actiontype} {targettype} {featuretype}" }).describe("Entry title from the message metadata (`{field}` placeholders; a record without metadata uses its first line of text)."),
  linkTemplate: z.string().min(1).optional().describe("Entry link from the message metadata (`{field}` placeholders, URL-encoded), unless the metadata has `link`."),
  serve: feedServerSchema.omit({ db: true }).optional().describe("Also serve the feeds over HTTP from this process (`{ tokens_file, port, host, public_url, title }`)."),
});

/** Options of `feedProducer`. */
export type FeedProducerOptions = z.input<typeof feedProducerSchema>;
/** Options of `feedServer`. */
export type FeedServerOptions = z.input<typeof feedServerSchema>;

/** Parses options or throws one CONFIG error listing every problem with its path. */
export function parseOptions<T>(schema: z.ZodType, options: unknown, what: string): T {
  return parseWith(schema as z.ZodType<T>, options, what, "feed");
}
