/**
 * A ZIP streamed to a temp file with yazl (pure JS, ZIP64 when needed) and renamed into place when complete,
 * so a reader never sees a half-written ZIP. Entries are written in turn: yazl reads one entry's stream at a
 * time, so a writer must finish an entry before writing the next (parallel parts go through temp files).
 */
import { createWriteStream } from "node:fs";
import { mkdir, open, rename, rm } from "node:fs/promises";
import { dirname } from "node:path";
import { PassThrough } from "node:stream";
import type { Readable } from "node:stream";
import { finished } from "node:stream/promises";
import yazl from "yazl";

const HIGH_WATER = 1 << 20;

/** One entry being written: `write` resolves at once unless the stream is full. */
export class EntrySink {
  readonly stream = new PassThrough({ highWaterMark: HIGH_WATER });
  bytes = 0;

  write(chunk: string | Buffer): Promise<void> | undefined {
    this.bytes += typeof chunk === "string" ? Buffer.byteLength(chunk) : chunk.length;
    if (this.stream.write(chunk)) return undefined;
    return new Promise((resolve, reject) => {
      const onDrain = () => (this.stream.off("error", onError), resolve());
      const onError = (err: Error) => (this.stream.off("drain", onDrain), reject(err));
      this.stream.once("drain", onDrain);
      this.stream.once("error", onError);
    });
  }

  end(): void {
    this.stream.end();
  }
}

/** Adds entries to a yazl ZipFile; shared by the outer ZIP and an XLSX (a ZIP inside it). */
export class ZipEntries {
  readonly zip = new yazl.ZipFile();

  constructor(private readonly compressionLevel = 6) {}

  entry(name: string): EntrySink {
    const sink = new EntrySink();
    this.zip.addReadStream(sink.stream, name, { compressionLevel: this.compressionLevel });
    return sink;
  }

  stream(input: Readable, name: string): void {
    this.zip.addReadStream(input, name, { compressionLevel: this.compressionLevel });
  }

  file(path: string, name: string): void {
    this.zip.addFile(path, name, { compressionLevel: this.compressionLevel });
  }

  buffer(content: string | Buffer, name: string): void {
    this.zip.addBuffer(typeof content === "string" ? Buffer.from(content) : content, name, { compressionLevel: this.compressionLevel });
  }

  end(): void {
    this.zip.end();
  }

  get output(): Readable {
    return this.zip.outputStream as Readable;
  }
}

/** The outer ZIP, written to `tempPath` and renamed to `finalPath` by `commit`. */
export class ZipFileWriter extends ZipEntries {
  private readonly out;
  private readonly done: Promise<void>;

  constructor(
    private readonly tempPath: string,
    private readonly finalPath: string,
    compressionLevel?: number,
  ) {
    super(compressionLevel);
    this.out = createWriteStream(tempPath);
    this.output.pipe(this.out);
    this.done = finished(this.out);
    this.done.catch(() => undefined);
  }

  /** Ends the ZIP, flushes it to disk and moves it into place. */
  async commit(): Promise<void> {
    this.end();
    await this.done;
    const fh = await open(this.tempPath, "r");
    try {
      await fh.sync();
    } finally {
      await fh.close();
    }
    await mkdir(dirname(this.finalPath), { recursive: true });
    await rename(this.tempPath, this.finalPath);
  }

  async abort(): Promise<void> {
    this.output.unpipe(this.out);
    this.out.destroy();
    await rm(this.tempPath, { force: true });
  }
}
