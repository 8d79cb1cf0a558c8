/** Jobs: what a request queues, its cache key, and the work that turns it into a ZIP. */
import { createHash } from "node:crypto";
import { mkdir, rm } from "node:fs/promises";
import { basename, join } from "node:path";
import { Readable, Transform } from "node:stream";
import { finished, pipeline } from "node:stream/promises";
import { GeoWatchError, fetchWithPolicy } from "@geowatch/core";
import type { UrlPolicy } from "@geowatch/core";
import type { PackagerConfig } from "./config.js";
import { delimitedWriter } from "./formats/delimited.js";
import { dwcaWriter } from "./formats/dwca.js";
import { geojsonWriter } from "./formats/geojson.js";
import { gpkgWriter } from "./formats/gpkg.js";
import type { RowWriter, WriterContext } from "./formats/types.js";
import { xlsxWriter } from "./formats/xlsx.js";
import { datastorePages } from "./sources/datastore.js";
import { openSource, sourcePages } from "./sources/store.js";
import type { PagingStyle } from "./sources/datastore.js";
import { ZipFileWriter } from "./zip.js";

export const FORMATS = ["csv", "tsv", "xlsx", "geojson", "gpkg"] as const;
export type Format = (typeof FORMATS)[number];
export type JobKind = "datastore" | "url" | "dwc" | "source";

/** The data parameters of a job: everything that decides the ZIP's content (the cache key is made of these only). */
export interface JobData {
  kind: JobKind;
  resourceId: string;
  apiUrl?: string;
  resourceUrl?: string;
  /** kind "source": the configured source (`sources.<name>`) read at key `resourceId`. */
  source?: string;
  filters?: Record<string, unknown>;
  q?: string;
  offset?: number;
  limit?: number;
  format?: Format;
}

/** A queued job, as the queue message carries it. The API key travels with it (workers fetch with it); the secret never does. */
export interface JobMessage {
  id: string;
  data: JobData;
  email: string;
  key?: string;
  /** CKAN host, for the mail's {ckan_host}. */
  ckanHost: string;
}

/** Sorted-keys JSON, so equal filters give one key whatever their order. */
function canonical(v: unknown): string {
  if (Array.isArray(v)) return `[${v.map(canonical).join(",")}]`;
  if (v !== null && typeof v === "object") {
    return `{${Object.keys(v)
      .sort()
      .filter((k) => (v as Record<string, unknown>)[k] !== undefined)
      .map((k) => `${JSON.stringify(k)}:${canonical((v as Record<string, unknown>)[k])}`)
      .join(",")}}`;
  }
  return JSON.stringify(v);
}

/** The cache key: a digest of the data parameters only (never the secret, the email or the API key). */
export function cacheKey(data: JobData): string {
  return createHash("sha256").update(canonical(data)).digest("hex");
}

export function zipName(data: JobData): string {
  const safe = data.resourceId.replace(/[^A-Za-z0-9._-]/g, "_").slice(0, 80) || "resource";
  return `${safe}-${cacheKey(data).slice(0, 16)}.zip`;
}

export interface Progress {
  (done: number, total: number | null): void;
}

export interface RunContext {
  config: PackagerConfig;
  policy: UrlPolicy;
  signal?: AbortSignal;
  onProgress: Progress;
  onPaging?: (style: PagingStyle) => void;
}

function writerFor(job: JobMessage, ctx: WriterContext, config: PackagerConfig): RowWriter {
  if (job.data.kind === "dwc") return dwcaWriter(ctx, config.dwc);
  switch (job.data.format ?? "csv") {
    case "csv":
      return delimitedWriter(ctx, "csv");
    case "tsv":
      return delimitedWriter(ctx, "tsv");
    case "xlsx":
      return xlsxWriter(ctx);
    case "geojson":
      return geojsonWriter(ctx);
    case "gpkg":
      return gpkgWriter(ctx);
  }
}

/** Builds the job's ZIP in the temp directory and renames it into the store; returns its name. */
export async function buildZip(job: JobMessage, rc: RunContext): Promise<string> {
  const { config } = rc;
  await mkdir(config.tempDirectory, { recursive: true });
  await mkdir(config.storeDirectory, { recursive: true });
  const name = zipName(job.data);
  const temp = join(config.tempDirectory, `${name}.${process.pid}.${Date.now()}.part`);
  const zip = new ZipFileWriter(temp, join(config.storeDirectory, name));
  const cleanup: string[] = [];
  const entryName = job.data.resourceId.replace(/[^A-Za-z0-9._-]/g, "_") || "resource";
  let writer: RowWriter | undefined;
  try {
    if (job.data.kind === "url") {
      await fetchResource(job, zip, rc);
    } else {
      writer = writerFor(job, { zip, name: entryName, tempDir: config.tempDirectory, cleanup }, config);
      let done = 0;
      let total: number | null = null;
      let begun = false;
      const pages = job.data.kind === "source" ? readSource(job, rc) : datastorePages(
        {
          apiUrl: job.data.apiUrl!,
          resourceId: job.data.resourceId,
          filters: job.data.filters,
          q: job.data.q,
          offset: job.data.offset,
          limit: job.data.limit,
          key: job.key,
        },
        { policy: rc.policy, pageSize: config.pageSize, timeoutMs: config.requestTimeoutMs, signal: rc.signal },
        rc.onPaging,
      );
      for await (const page of pages) {
        if (!begun) {
          await writer.begin(page.fields);
          begun = true;
          if (page.total !== undefined) {
            const avail = Math.max(0, page.total - (job.data.offset ?? 0));
            total = job.data.limit === undefined ? avail : Math.min(avail, job.data.limit);
          }
        }
        await writer.write(page.rows);
        done += page.rows.length;
        rc.onProgress(done, total);
      }
      if (!begun) throw new GeoWatchError("FETCH", "datastore_search returned no page");
      await writer.end();
    }
    await zip.commit();
    return name;
  } catch (err) {
    await writer?.abort?.();
    await zip.abort();
    throw err;
  } finally {
    await Promise.all(cleanup.map((p) => rm(p, { force: true })));
  }
}

/** /package_source: the rows of a configured GeoWatch store's key; the store is closed after the read. */
async function* readSource(job: JobMessage, rc: RunContext): AsyncGenerator<{ fields: import("./sources/datastore.js").Field[]; rows: unknown[][]; total?: number }> {
  const src = await openSource(rc.config, job.data.source!);
  try {
    yield* sourcePages(src, job.data.resourceId);
  } finally {
    await src.store.close();
  }
}

/** /package_url: the resource file, fetched only through the URL policy, streamed into the ZIP. */
async function fetchResource(job: JobMessage, zip: ZipFileWriter, rc: RunContext): Promise<void> {
  const url = job.data.resourceUrl!;
  const headers: Record<string, string> = {};
  if (job.key) headers.authorization = job.key;
  const res = await fetchWithPolicy(url, { headers, signal: rc.signal }, rc.policy, {
    maxRedirects: 5,
    timeoutMs: Math.max(rc.config.requestTimeoutMs, 3_600_000),
    maxBytes: rc.config.maxDownloadBytes,
  });
  if (!res.ok || !res.body) {
    await res.body?.cancel();
    throw new GeoWatchError("FETCH", `resource_url answered ${res.status}`, { retryable: res.status >= 500 || res.status === 429 });
  }
  const lengthHeader = res.headers.get("content-length");
  const total = lengthHeader ? Number(lengthHeader) : null;
  let done = 0;
  let last = 0;
  // Counts bytes on their way into the ZIP (a paused Transform: nothing flows before yazl reads it).
  const counter = new Transform({
    transform(chunk: Buffer, _enc, cb) {
      done += chunk.length;
      if (done - last >= 1 << 20) {
        last = done;
        rc.onProgress(done, total);
      }
      cb(null, chunk);
    },
  });
  const body = Readable.fromWeb(res.body as never);
  const piped = pipeline(body, counter);
  let file = basename(new URL(url).pathname) || job.data.resourceId;
  file = file.replace(/[^A-Za-z0-9._-]/g, "_");
  zip.stream(counter, file);
  await piped;
  await finished(counter);
  rc.onProgress(done, total ?? done);
}
