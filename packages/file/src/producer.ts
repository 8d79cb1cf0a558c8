import { statSync } from "node:fs";
import { mkdir, open, rename } from "node:fs/promises";
import type { FileHandle } from "node:fs/promises";
import { dirname, resolve } from "node:path";
import { GeoWatchError, guardProducer } from "@geowatch/core";
import type { OutRecord, Producer, SendResult, ManagedProducer } from "@geowatch/core";
import { toLine } from "./line.js";
import { fsyncDir, serial } from "./fsutil.js";
import { fileProducerSchema, parseOptions } from "./options.js";
import type { FileProducerOptions } from "./options.js";

/**
 * Appends each record as one NDJSON line (see `toLine` for the exact rule). A batch is written with one
 * append, on disk before `send` returns (the file is opened O_SYNC), so an acknowledged record survives a crash.
 */
export function createFileProducer(options: FileProducerOptions): Producer {
  const opts = parseOptions<FileProducerOptions>(fileProducerSchema, options, "file producer");
  const file = resolve(opts.path);
  const sync = opts.fsync ?? true;
  const one = serial();
  let fh: FileHandle | undefined;
  /** Inode of the open file, to notice when the path names another file. */
  let ino = -1;
  let size = 0;

  async function ensureOpen(): Promise<FileHandle> {
    if (fh) return fh;
    await mkdir(dirname(file), { recursive: true });
    // With fsync, the file is opened O_SYNC ("as"): each append returns once it is on disk, one system call where
    // a write and an fsync were two (each a round trip through libuv's thread pool, which waits for the main
    // thread to be free when a busy pipeline feeds the producer).
    const h = await open(file, sync ? "as" : "a");
    const st = await h.stat();
    size = st.size;
    ino = st.ino;
    if (sync) await fsyncDir(dirname(file));
    fh = h;
    return h;
  }

  async function rotate(): Promise<void> {
    await fh?.close();
    fh = undefined;
    await rename(file, `${file}.${Date.now()}`);
  }

  async function writeAll(h: FileHandle, buf: Buffer): Promise<void> {
    let done = 0;
    while (done < buf.length) {
      const { bytesWritten } = await h.write(buf, done, buf.length - done);
      done += bytesWritten;
    }
  }

  async function send(records: OutRecord[]): Promise<SendResult[]> {
    const results: SendResult[] = [];
    const lines: string[] = [];
    for (const r of records) {
      try {
        lines.push(`${toLine(r.value, r.jsonText === true)}\n`);
        results.push({ ok: true });
      } catch (error) {
        results.push({ ok: false, error: error as Error, retryable: false });
      }
    }
    if (lines.length === 0) return results;
    const buf = Buffer.from(lines.join(""), "utf8");
    await one(async () => {
      try {
        let h = await ensureOpen();
        // Someone else may have rotated or removed the file: reopen so we append where readers look. One stat
        // of the path per batch; the open file's own size is looked up only when it decides a rotation. The stat
        // is synchronous: a few microseconds, where a trip through the thread pool waits for a busy main thread
        // (measured ~2.7 ms per batch in the geofence-e2e bench, which made this producer the pipeline's limit).
        const onDisk = statOrUndefined(file);
        if (!onDisk || onDisk.ino !== ino) {
          await h.close();
          fh = undefined;
          h = await ensureOpen();
        } else if (opts.rotateBytes !== undefined) {
          size = (await h.stat()).size;
        }
        if (opts.rotateBytes !== undefined && size > 0 && size + buf.length > opts.rotateBytes) {
          await rotate();
          h = await ensureOpen();
        }
        await writeAll(h, buf);
        size += buf.length;
      } catch (cause) {
        throw new GeoWatchError("SEND", `append to "${file}" failed`, { backend: "file", cause, retryable: true });
      }
    });
    return results;
  }

  return {
    capabilities: { batching: true },
    async connect() {
      await one(async () => {
        await ensureOpen();
      });
    },
    send,
    async close() {
      await one(async () => {
        await fh?.close();
        fh = undefined;
      });
    },
  };
}

function statOrUndefined(path: string): ReturnType<typeof statSync> {
  try {
    return statSync(path, { throwIfNoEntry: false });
  } catch {
    return undefined;
  }
}

/**
 * file producer, wrapped in core's runtime layer (connect once with retries, refuse calls after close, close once),
 * for use without a config. The backend definition hands the runtime the raw object instead.
 */
export function fileProducer(options: FileProducerOptions): ManagedProducer {
  return guardProducer(createFileProducer(options), { name: "file producer", backend: "file" });
}
