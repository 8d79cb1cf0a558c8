import { mkdir, open, readFile } from "node:fs/promises";
import { dirname, isAbsolute, resolve, sep } from "node:path";
import { GeoWatchError, guardStore } from "@geowatch/core";
import type { Payload, Store, StoreWrite, ManagedStore } from "@geowatch/core";
import { errnoOf, fsyncDir, writeAtomic } from "./fsutil.js";
import { loneSurrogateAt } from "./line.js";
import { fileStoreSchema, parseOptions } from "./options.js";
import type { FileStoreOptions } from "./options.js";

/**
 * One file per key under `dir`. Append mode appends bytes (the core asks for it only when the codec is
 * appendable); snapshot mode replaces the file atomically (temp file + rename). Both fsync.
 */
export function createFileStore(options: FileStoreOptions): Store {
  const opts = parseOptions<FileStoreOptions>(fileStoreSchema, options, "file store");
  const root = resolve(opts.dir);
  const sync = opts.fsync ?? true;

  function fileOf(key: string): string {
    const refuse = (why: string): never => {
      throw new GeoWatchError("SECURITY", `key "${key}" ${why}`, { backend: "file", path: key });
    };
    if (key === "" || key.includes("\0")) refuse("is empty or holds a NUL byte");
    if (isAbsolute(key) || /^[a-zA-Z]:/.test(key) || key.startsWith("\\")) refuse("is an absolute path");
    if (key.split(/[\\/]/).includes("..")) refuse("climbs out of the store directory with ..");
    const file = resolve(root, key);
    if (!file.startsWith(root + sep)) refuse("resolves outside the store directory");
    return file;
  }

  return {
    capabilities: { append: true, read: true },
    async connect() {
      await mkdir(root, { recursive: true });
    },
    async write(op: StoreWrite): Promise<void> {
      const file = fileOf(op.key);
      if (typeof op.body === "string") {
        const lone = loneSurrogateAt(op.body);
        if (lone >= 0) {
          throw new GeoWatchError("ENCODE", `body of key "${op.key}" is not valid Unicode text (lone surrogate at index ${lone})`, { backend: "file", path: op.key });
        }
      }
      const body = typeof op.body === "string" ? Buffer.from(op.body, "utf8") : op.body;
      try {
        await mkdir(dirname(file), { recursive: true });
        if (!op.append) return await writeAtomic(file, body, sync);
        const fh = await open(file, "a");
        try {
          await fh.writeFile(body);
          if (sync) await fh.sync();
        } finally {
          await fh.close();
        }
        if (sync) await fsyncDir(dirname(file));
      } catch (cause) {
        throw new GeoWatchError("STORE", `write of key "${op.key}" failed`, { backend: "file", cause, retryable: true });
      }
    },
    async read(key: string): Promise<Payload | undefined> {
      const file = fileOf(key);
      try {
        return new Uint8Array(await readFile(file));
      } catch (err) {
        if (errnoOf(err) === "ENOENT") return undefined;
        throw new GeoWatchError("STORE", `read of key "${key}" failed`, { backend: "file", cause: err });
      }
    },
  };
}

/**
 * file store, wrapped in core's runtime layer (connect once with retries, refuse calls after close, close once),
 * for use without a config. The backend definition hands the runtime the raw object instead.
 */
export function fileStore(options: FileStoreOptions): ManagedStore {
  return guardStore(createFileStore(options), { name: "file store", backend: "file" });
}
