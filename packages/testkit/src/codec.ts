import { describe, expect, it } from "vitest";
import { isGeoWatchError, packWith, unpackWith } from "@geowatch/core";
import type { CodecCheck, CodecSuiteOptions } from "./types.js";
import { bytesOf, textOf } from "./util.js";

function expectEqual(o: CodecSuiteOptions, got: unknown, want: unknown, what: string): void {
  if (o.equal) expect(o.equal(got, want), `${what}: ${JSON.stringify(got)} equals ${JSON.stringify(want)}`).toBe(true);
  else expect(got, what).toEqual(want);
}

const roundTrip: CodecCheck = (o) => {
  o.samples.forEach((sample, i) => {
    const encoded = o.codec.encode(sample);
    expect(typeof encoded === "string" || encoded instanceof Uint8Array, `sample ${i} encodes to a string or bytes`).toBe(true);
    expectEqual(o, o.codec.decode(encoded), sample, `sample ${i} survives encode/decode`);
    // Channels may hand the same payload back as bytes or as text.
    const other = typeof encoded === "string" ? bytesOf(encoded) : textOf(encoded);
    expectEqual(o, o.codec.decode(other), sample, `sample ${i} decodes from ${typeof other === "string" ? "text" : "bytes"} too`);
  });
};

const packRoundTrip: CodecCheck = (o) => {
  if (o.samples.length === 0) throw new Error("[geowatch-testkit] codecSuite needs at least one sample");
  // Packs through the core's fallbacks, so a codec without pack/unpack is checked the way stores use it.
  expectEqual(o, unpackWith(o.codec, packWith(o.codec, o.samples)), o.samples, "samples survive pack/unpack");
  expectEqual(o, unpackWith(o.codec, packWith(o.codec, [])), [], "an empty pack unpacks to []");
};

const appendable: CodecCheck = (o) => {
  if (!o.codec.appendable) throw new Error("[geowatch-testkit] this check needs codec.appendable");
  const cut = Math.max(1, Math.floor(o.samples.length / 2));
  const a = o.samples.slice(0, cut);
  const b = o.samples.slice(cut);
  const joined = textOf(packWith(o.codec, a)) + textOf(packWith(o.codec, b));
  expect(joined, "pack(a) + pack(b) equals pack(a concat b)").toBe(textOf(packWith(o.codec, [...a, ...b])));
  expectEqual(o, unpackWith(o.codec, joined), o.samples, "an appended body unpacks to every value");
};

const badPayloads: CodecCheck = (o) => {
  o.bad.forEach((payload, i) => {
    let err: unknown;
    try {
      o.codec.decode(payload);
    } catch (e) {
      err = e;
    }
    expect(err, `bad payload ${i} (${JSON.stringify(textOf(payload).slice(0, 40))}) is rejected`).toBeDefined();
    expect(isGeoWatchError(err, "DECODE"), `bad payload ${i} throws a GeoWatchError with code DECODE (got ${String(err)})`).toBe(true);
    expect((err as Error).message.trim(), `bad payload ${i}: the error says what is wrong`).not.toBe("");
  });
};

/** The codec checks, each runnable on its own. */
export const codecChecks = { roundTrip, packRoundTrip, appendable, badPayloads } satisfies Record<string, CodecCheck>;

/** `describe("<name> codec conformance")`. */
export function codecSuite(name: string, opts: CodecSuiteOptions): void {
  describe(`${name} codec conformance`, () => {
    it("each sample survives encode/decode", () => roundTrip(opts));
    it("samples survive pack/unpack", () => packRoundTrip(opts));
    if (opts.codec.appendable) it("appendable: pack(a) + pack(b) equals pack(a concat b)", () => appendable(opts));
    if (opts.bad.length > 0) it("bad payloads throw DECODE with a message", () => badPayloads(opts));
  });
}
