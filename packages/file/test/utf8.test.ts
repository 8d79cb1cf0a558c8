import { mkdtemp, readFile, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterEach, beforeEach, describe, expect, it } from "vitest";
import { Broker, isGeoWatchError, jsonCodec } from "@geowatch/core";
import type { Consumer, InRecord, OutRecord, Producer } from "@geowatch/core";
import { fileConsumer, fileProducer, fileStore } from "../src/index.js";

let dir: string;
const open: Consumer[] = [];
beforeEach(async () => {
  dir = await mkdtemp(join(tmpdir(), "gw-file-utf8-"));
});
afterEach(async () => {
  for (const c of open.splice(0)) await c.close?.();
  await rm(dir, { recursive: true, force: true });
});

const quiet = { debug() {}, info() {}, warn() {}, error() {} };
const enc = new TextEncoder();
const concat = (...parts: Array<string | number[] | Uint8Array>) =>
  Buffer.concat(parts.map((p) => (typeof p === "string" ? enc.encode(p) : Uint8Array.from(p))));

function consumer(path: string, extra: Record<string, unknown> = {}): Consumer {
  const c = fileConsumer({ path, pollMs: 20, ...extra }, { logger: quiet });
  open.push(c);
  return c;
}

async function drain(c: Consumer, n: number): Promise<InRecord[]> {
  const out: InRecord[] = [];
  const until = Date.now() + 3000;
  while (out.length < n && Date.now() < until) out.push(...(await c.receive(n - out.length, { waitMs: 100 })));
  return out;
}

function collecting(): Producer & { got: OutRecord[] } {
  const got: OutRecord[] = [];
  return { got, send: async (rs) => rs.map((r) => (got.push(r), { ok: true as const })) };
}

describe("invalid UTF-8 in the file channel", () => {
  it("a line that is not UTF-8 becomes a DECODE dead letter naming the byte and the line's offset; the rest flows", async () => {
    const path = join(dir, "in.ndjson");
    const good1 = '{"i":1,"name":"Zürich ✓"}\n';
    // 0xC3 0x28: a lead byte (byte 6 of the line) followed by "(" instead of a continuation; CRLF ending.
    const bad = concat('{"i":"', [0xc3, 0x28], '"}\r\n');
    const good3 = '{"i":3}\n';
    await writeFile(path, concat(good1, bad, good3));
    const badOffset = Buffer.byteLength(good1);

    const out = collecting();
    const dlq = collecting();
    const broker = new Broker({
      name: "utf8",
      consumers: [{ name: "in", consumer: consumer(path), codec: jsonCodec }],
      producers: [{ name: "out", producer: out, codec: jsonCodec }],
      deadLetter: { name: "dlq", producer: dlq },
      sleepPeriodMs: 10,
      receiveWaitMs: 50,
    });
    const stats = await broker.run({ untilIdle: true });

    expect(out.got.map((r) => JSON.parse(r.value as string) as unknown)).toEqual([{ i: 1, name: "Zürich ✓" }, { i: 3 }]);
    expect(dlq.got).toHaveLength(1);
    const dead = JSON.parse(dlq.got[0]!.value as string) as {
      reason: string;
      position: { stream: string; offset: number; next: number };
      payload: { base64: string };
    };
    expect(dead.reason).toMatch(/^\[geowatch\] \[json\] invalid UTF-8 at byte 6\b/);
    expect(dead.position).toEqual({ stream: path, offset: badOffset, next: badOffset + bad.length });
    // The original bytes, not U+FFFD: the payload is the line itself (its CRLF ending dropped).
    expect(Buffer.from(dead.payload.base64, "base64")).toEqual(bad.subarray(0, bad.length - 2));
    expect(stats.deadLettered).toBe(1);
    expect(stats.acked).toBe(3);
    // Everything, the dead-lettered line included, was committed: a restart does not replay it.
    const saved = JSON.parse(await readFile(`${path}.offset`, "utf8")) as { offset: number };
    expect(saved.offset).toBe(badOffset + bad.length + good3.length);
  });

  it("hands an invalid line on as its exact bytes, which the codecs refuse with DECODE, and valid lines as strings", async () => {
    const path = join(dir, "in.ndjson");
    // Valid multi-byte text on every line and a chunk size that cuts through characters, so the
    // per-chunk check must not mistake a cut character for bad input.
    const lines = Array.from({ length: 300 }, (_, i) => JSON.stringify({ i, s: "é✓😀".repeat(i % 7) }));
    const badAt = 150;
    const raw = lines.map((l, i) => (i === badAt ? concat('{"s":"', [0xed, 0xa0, 0x80], '"}') : enc.encode(l)));
    await writeFile(path, Buffer.concat(raw.flatMap((b) => [b, enc.encode("\n")])));

    const recs = await drain(consumer(path, { chunkBytes: 1024 }), lines.length);
    expect(recs).toHaveLength(lines.length);
    recs.forEach((r, i) => {
      if (i === badAt) return;
      expect(r.value, `line ${i}`).toBe(lines[i]);
    });
    const value = recs[badAt]!.value;
    expect(value).toBeInstanceOf(Uint8Array);
    expect(Buffer.from(value as Uint8Array)).toEqual(Buffer.from(raw[badAt]!));
    // An encoded surrogate (ED A0 80) is not UTF-8 either: the codec names its byte.
    let err: unknown;
    try {
      jsonCodec.decode(value);
    } catch (e) {
      err = e;
    }
    expect(isGeoWatchError(err, "DECODE")).toBe(true);
    expect((err as Error).message).toContain("invalid UTF-8 at byte 6");
  });

  it("the producer refuses a string it cannot write as UTF-8 instead of writing U+FFFD, and keeps a BOM", async () => {
    const path = join(dir, "out.ndjson");
    const p = fileProducer({ path });
    const bom = concat([0xef, 0xbb, 0xbf], '{"a":1}');
    const res = await p.send([{ value: '{"ok":1}' }, { value: '{"s":"\uD800"}' }, { value: "x\uDC00y" }, { value: bom }, { value: "😀" }]);
    await p.close?.();
    expect(res.map((r) => r.ok)).toEqual([true, false, false, true, true]);
    const e = res[1] as { error: Error };
    expect(isGeoWatchError(e.error, "ENCODE")).toBe(true);
    expect(e.error.message).toContain("lone surrogate at index 6");
    const text = await readFile(path, "utf8");
    expect(text).not.toContain("\uFFFD");
    expect(text).toBe('{"ok":1}\n"\uFEFF{\\"a\\":1}"\n"😀"\n');
    const back = await drain(consumer(path), 3);
    expect(back.map((r) => r.value)).toEqual(['{"ok":1}', '\uFEFF{"a":1}', "😀"]);
  });

  it("the store refuses a string body with a lone surrogate and writes bytes exactly", async () => {
    const s = fileStore({ dir: join(dir, "store") });
    await s.connect?.();
    const err = await s.write({ key: "a.txt", body: "ok\uD83D", contentType: "text/plain", append: false }).catch((x: unknown) => x);
    expect(isGeoWatchError(err, "ENCODE")).toBe(true);
    expect((err as Error).message).toContain('key "a.txt"');
    expect(await s.read?.("a.txt")).toBeUndefined();
    const bytes = Uint8Array.from([0xff, 0x00, 0xc3, 0x28, 0x0a]);
    await s.write({ key: "b.bin", body: bytes, contentType: "application/octet-stream", append: true });
    expect(await s.read?.("b.bin")).toEqual(bytes);
  });
});
