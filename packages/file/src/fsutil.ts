import { open, rename, rm } from "node:fs/promises";
import { dirname } from "node:path";
import { randomBytes } from "node:crypto";

/** fsync a directory so a rename or a new file in it survives a crash (best effort where unsupported). */
export async function fsyncDir(dir: string): Promise<void> {
  let fh;
  try {
    fh = await open(dir, "r");
    await fh.sync();
  } catch {
    // Some platforms and file systems refuse to fsync directories; the data itself is already synced.
  } finally {
    await fh?.close();
  }
}

/** Replace `file` atomically: write a temp file beside it, fsync, rename over, fsync the directory. */
export async function writeAtomic(file: string, data: Uint8Array | string, sync: boolean): Promise<void> {
  const tmp = `${file}.tmp-${process.pid}-${randomBytes(4).toString("hex")}`;
  try {
    const fh = await open(tmp, "w");
    try {
      await fh.writeFile(data);
      if (sync) await fh.sync();
    } finally {
      await fh.close();
    }
    await rename(tmp, file);
  } catch (err) {
    await rm(tmp, { force: true });
    throw err;
  }
  if (sync) await fsyncDir(dirname(file));
}

/** Runs tasks one at a time, in call order. */
export function serial(): <T>(task: () => Promise<T>) => Promise<T> {
  let tail: Promise<unknown> = Promise.resolve();
  return <T>(task: () => Promise<T>): Promise<T> => {
    const run = tail.then(task, task);
    tail = run.catch(() => undefined);
    return run;
  };
}

export function errnoOf(err: unknown): string | undefined {
  return typeof err === "object" && err !== null && "code" in err ? String(err.code) : undefined;
}
