import { describe, expect, test } from "vitest";
import { GeoWatchError } from "../src/errors.js";
import type { Codec } from "../src/types.js";
import {
  codecRegistry,
  csvCodec,
  geojsonCodec,
  getCodec,
  jsonCodec,
  ndjsonCodec,
  plainCodec,
  tsvCodec,
  validateGeoJSON,
} from "../src/codecs/index.js";
import type { GeoJSONObject } from "../src/codecs/index.js";
import { isValidatedGeoJSON } from "../src/geojson/validate.js";

const bytes = (s: string) => new TextEncoder().encode(s);
const text = (p: Uint8Array | string) => (typeof p === "string" ? p : new TextDecoder().decode(p));

/** Runs `fn` and returns the GeoWatchError it throws. */
function caught(fn: () => unknown): GeoWatchError {
  try {
    fn();
  } catch (err) {
    expect(err).toBeInstanceOf(GeoWatchError);
    return err as GeoWatchError;
  }
  throw new Error("expected an error");
}

function decodeError(codec: Codec, payload: Uint8Array | string, unpack = false): GeoWatchError {
  const err = caught(() => (unpack ? codec.unpack!(payload) : codec.decode(payload)));
  expect(err.code).toBe("DECODE");
  expect(err.backend).toBe(codec.name);
  return err;
}

/** pack(a) + pack(b) unpacks to a concat b. */
function expectAppendable<T>(codec: Codec<T>, a: T[], b: T[]): void {
  expect(codec.appendable).toBe(true);
  const body = text(codec.pack!(a)) + text(codec.pack!(b));
  expect(codec.unpack!(body)).toEqual([...a, ...b]);
}

const point = (lon: number, lat: number, props: Record<string, unknown> | null = {}) => ({
  type: "Feature",
  geometry: { type: "Point", coordinates: [lon, lat] },
  properties: props,
});
const square = [[[0, 0], [1, 0], [1, 1], [0, 1], [0, 0]]];

describe("plain", () => {
  test("round trips text, unicode and bytes", () => {
    for (const s of ["", "hello", "grüße 🌍 日本語", "x".repeat(1 << 20)]) {
      expect(plainCodec.decode(plainCodec.encode(s))).toBe(s);
      expect(plainCodec.decode(bytes(s))).toBe(s);
    }
  });
  test("invalid UTF-8 is a DECODE error naming the byte", () => {
    const err = decodeError(plainCodec, new Uint8Array([0x61, 0x62, 0xc3, 0x28]));
    expect(err.message).toBe("[geowatch] [plain] invalid UTF-8 at byte 2");
    expect(decodeError(plainCodec, new Uint8Array([0xed, 0xa0, 0x80])).message).toContain("byte 0");
    expect(decodeError(plainCodec, new Uint8Array([0x41, 0xf0, 0x9f])).message).toContain("byte 1");
  });
  test("encode refuses non-strings", () => {
    expect(caught(() => plainCodec.encode(42 as unknown as string)).code).toBe("ENCODE");
  });
  test("pack/unpack lines, appendable; line breaks refused", () => {
    expect(plainCodec.pack!(["a", "b"])).toBe("a\nb\n");
    expectAppendable(plainCodec, ["a", "", "ü"], ["c"]);
    expect(plainCodec.unpack!("a\r\nb")).toEqual(["a", "b"]);
    expect(caught(() => plainCodec.pack!(["a\nb"])).message).toContain("value 0: contains a line break");
  });
});

describe("json", () => {
  test("round trips values, unicode and large values", () => {
    const big = { items: Array.from({ length: 50_000 }, (_, i) => ({ i, s: `ü${i}` })) };
    for (const v of [null, 1, "snow ☃", [1, { a: [true] }], { "ключ": "значение", e: "\u2028" }, big]) {
      expect(jsonCodec.decode(jsonCodec.encode(v))).toEqual(v);
      expect(jsonCodec.decode(bytes(text(jsonCodec.encode(v))))).toEqual(v);
    }
  });
  test("syntax errors name line and column", () => {
    const err = decodeError(jsonCodec, '{"a":\n1,}');
    expect(err.message).toMatch(/^\[geowatch\] \[json\] invalid JSON: .*line 2 column 3/);
    expect(decodeError(jsonCodec, "[1,2").message).toContain("line 1 column 5");
    // V8 gives no position for "Unexpected token"; the codec locates it and keeps one line.
    expect(decodeError(jsonCodec, '{"a":[1,\n  2,\n  ]}').message).toMatch(/^\[geowatch\] \[json\] invalid JSON: [^\n]*\(line 3 column 3\)$/);
    expect(decodeError(jsonCodec, '{"a":tru}').message).toContain("(line 1 column 6)");
    expect(decodeError(jsonCodec, '{"a":1,"b":"\\q"}').message).toContain("line 1 column 14");
    expect(decodeError(jsonCodec, "  ").message).toBe("[geowatch] [json] invalid JSON: empty input");
    expect(decodeError(jsonCodec, new Uint8Array([0x22, 0xff, 0x22])).message).toContain("invalid UTF-8 at byte 1");
  });
  test("encode refuses what JSON cannot carry", () => {
    const cyclic: Record<string, unknown> = {};
    cyclic.self = cyclic;
    expect(caught(() => jsonCodec.encode(cyclic)).code).toBe("ENCODE");
    expect(caught(() => jsonCodec.encode(undefined)).message).toContain("cannot encode undefined");
    expect(caught(() => jsonCodec.encode(1n)).code).toBe("ENCODE");
  });
  test("pack is a JSON array", () => {
    expect(jsonCodec.appendable).toBe(false);
    expect(jsonCodec.pack!([1, { a: 2 }])).toBe('[1,{"a":2}]');
    expect(jsonCodec.unpack!('[1,{"a":2}]')).toEqual([1, { a: 2 }]);
    expect(jsonCodec.unpack!("")).toEqual([]);
    expect(decodeError(jsonCodec, '{"a":1}', true).message).toContain("must be a JSON array, got object");
  });
});

describe("ndjson", () => {
  test("round trips; encoded values are one line", () => {
    const v = { s: "line1\nline2\r\u2028", n: [1.5, 0], u: "😀" };
    const encoded = text(ndjsonCodec.encode(v));
    expect(encoded).not.toMatch(/[\n\r]/);
    expect(ndjsonCodec.decode(encoded)).toEqual(v);
  });
  test("pack/unpack per line, appendable, blank lines skipped", () => {
    expect(ndjsonCodec.pack!([1, "a"])).toBe('1\n"a"\n');
    expectAppendable(ndjsonCodec, [{ a: 1 }, "x\ny", null], [[1, 2]]);
    expect(ndjsonCodec.unpack!('1\r\n\n  \n{"b":2}')).toEqual([1, { b: 2 }]);
    expect(ndjsonCodec.unpack!("")).toEqual([]);
  });
  test("errors name the line", () => {
    const err = decodeError(ndjsonCodec, '1\n\n{"a" 1}\n', true);
    expect(err.message).toMatch(/^\[geowatch\] \[ndjson\] line 3: invalid JSON: .*\(column 6\)$/);
    expect(decodeError(ndjsonCodec, '{}\n{"a":}', true).message).toMatch(/^\[geowatch\] \[ndjson\] line 2: invalid JSON: .*\(column 6\)$/);
    expect(err.path).toBe("line 3");
    expect(decodeError(ndjsonCodec, "1\n2").message).toContain("line 2 column 1");
  });
});

describe("geojson", () => {
  test("round trips features, collections, envelopes and unicode", () => {
    const values = [
      point(13.4, 52.5, { name: "Zürich 🏔", tags: ["a"] }),
      { type: "FeatureCollection", features: [point(1, 1), { type: "Feature", geometry: { type: "Polygon", coordinates: square }, properties: null }] },
      { metadata: { actiontype: "update", date: "2026-11-23T00:00:00Z" }, data: point(-73.9, 40.7) },
      { type: "MultiPolygon", coordinates: [square] },
    ];
    for (const v of values) {
      expect(geojsonCodec.decode(geojsonCodec.encode(v as never))).toEqual(v);
      expect(geojsonCodec.decode(bytes(text(geojsonCodec.encode(v as never))))).toEqual(v);
    }
  });
  test("large collection", () => {
    const features = Array.from({ length: 20_000 }, (_, i) => point((i % 360) - 180, (i % 180) - 90, { i }));
    const fc = { type: "FeatureCollection", features };
    expect(geojsonCodec.decode(geojsonCodec.encode(fc))).toEqual(fc);
  });
  test("decode errors list every problem with its path", () => {
    const fc = { type: "FeatureCollection", features: [point(0, 0), point(0, 0), point(0, 0), { type: "Feature", properties: {}, geometry: { type: "Polygon", coordinates: [[[0, 0], [1, 0], [1, 1], [0, 1]]] } }] };
    const err = decodeError(geojsonCodec, JSON.stringify({ metadata: {}, data: fc }));
    expect(err.message).toBe(
      "[geowatch] [geojson] invalid GeoJSON: data.features[3].geometry.coordinates[0]: ring is not closed (its first and last positions differ)",
    );
    expect(err.path).toBe("data.features[3].geometry.coordinates[0]");
    const two = decodeError(geojsonCodec, '{"type":"Point","coordinates":["500",null]}');
    expect(two.message).toBe(
      '[geowatch] [geojson] invalid GeoJSON (2 problems): coordinates[0]: expected a finite number, got string "500"; coordinates[1]: expected a finite number, got null',
    );
    expect(decodeError(geojsonCodec, "[]").message).toContain("(root): expected a GeoJSON object or a {metadata, data} envelope, got an array");
    expect(decodeError(geojsonCodec, '{"type":"Point",').message).toMatch(/invalid JSON: .*line 1 column 17/);
  });
  test("a long list of problems is capped in the message", () => {
    const features = Array.from({ length: 30 }, () => point(Number.NaN, 0));
    const err = decodeError(geojsonCodec, JSON.stringify({ type: "FeatureCollection", features }));
    expect(err.message).toContain("(30 problems)");
    expect(err.message).toContain("... and 10 more");
    expect(validateGeoJSON({ type: "FeatureCollection", features })).toHaveLength(30);
  });
  test("pack is one FeatureCollection; unpack gives the features", () => {
    const a = point(1, 1);
    const b = point(2, 2);
    const c = point(3, 3);
    const geometry = { type: "Point", coordinates: [4, 4] };
    const body = geojsonCodec.pack!([a, { metadata: { actiontype: "x" }, data: { type: "FeatureCollection", features: [b, c] } }, geometry]);
    const parsed = JSON.parse(text(body));
    expect(parsed.type).toBe("FeatureCollection");
    expect(parsed.features).toHaveLength(4);
    expect(geojsonCodec.unpack!(body)).toEqual([a, b, c, { type: "Feature", geometry, properties: null }]);
    expect(geojsonCodec.unpack!(JSON.stringify(a))).toEqual([a]);
    expect(geojsonCodec.appendable).toBe(false);
    const bad = caught(() => geojsonCodec.pack!([a, { type: "Point", coordinates: [0] }]));
    expect(bad.code).toBe("ENCODE");
    expect(bad.message).toContain("value 1: invalid GeoJSON: coordinates: a position has 2 or 3 numbers, got 1");
  });
  test("marks what it decoded, so stages after it skip validating again", () => {
    const fc = { type: "FeatureCollection", features: [point(1, 1), point(2, 2)] };
    const decoded = geojsonCodec.decode(JSON.stringify(fc));
    expect(isValidatedGeoJSON(decoded)).toBe(true);
    // Points are not marked: checking one again costs less than marking it.
    expect(isValidatedGeoJSON(geojsonCodec.decode(JSON.stringify(point(1, 1))))).toBe(false);
    expect(isValidatedGeoJSON(geojsonCodec.decode(JSON.stringify({ metadata: {}, data: point(1, 1) })))).toBe(false);
    expect(isValidatedGeoJSON(geojsonCodec.decode(JSON.stringify({ ...point(1, 1), bbox: [1, 1, 1, 1] })))).toBe(true);
    expect(isValidatedGeoJSON(JSON.parse(JSON.stringify(fc)))).toBe(false);
    expect(isValidatedGeoJSON({ ...decoded })).toBe(false);
    const unpacked = geojsonCodec.unpack!(JSON.stringify({ metadata: {}, data: fc }));
    expect(unpacked).toEqual(fc.features);
    expect(unpacked.map((f) => isValidatedGeoJSON(f))).toEqual([true, true]);
    // Nothing invalid is marked.
    expect(() => geojsonCodec.decode('{"type":"Point","coordinates":[1]}')).toThrow(/a position has 2 or 3 numbers/);
  });
  test("pack validates what the codec did not decode and trusts what it did", () => {
    const polygon = { type: "Feature", geometry: { type: "Polygon", coordinates: square }, properties: {} };
    const decoded = geojsonCodec.decode(JSON.stringify(polygon)) as GeoJSONObject;
    const copy = { ...decoded };
    // Changed after decoding: pack trusts the decoded object, but the unmarked copy is checked.
    decoded.properties = 7;
    copy.properties = 7;
    expect(JSON.parse(text(geojsonCodec.pack!([decoded]))).features[0].properties).toBe(7);
    expect(caught(() => geojsonCodec.pack!([copy])).message).toContain("value 0: invalid GeoJSON: properties: expected an object or null, got number 7");
  });
  test("projected coordinates (outside lon/lat ranges) decode and pack", () => {
    const mercator = { type: "Feature", geometry: { type: "Point", coordinates: [1_113_194.9, 6_446_275.8] }, properties: null };
    expect(geojsonCodec.decode(JSON.stringify(mercator))).toEqual(mercator);
    expect(JSON.parse(text(geojsonCodec.pack!([{ ...mercator }]))).features).toEqual([mercator]);
  });
  test("metadataOf returns envelope metadata only", () => {
    const metadata = { actiontype: "delete", featuretype: "vehicle" };
    expect(geojsonCodec.metadataOf!({ metadata, data: point(0, 0) })).toBe(metadata);
    expect(geojsonCodec.metadataOf!(point(0, 0))).toBeUndefined();
  });
});

describe("tsv (list)", () => {
  test("round trips arrays with escapes and unicode", () => {
    const codec = tsvCodec();
    const rows = [["a", "b", "c"], ["tab\there", "new\nline", "cr\rx", "back\\slash", "\\t literal"], ["", "ünï", "🌍"], [""]];
    for (const r of rows) expect(codec.decode(codec.encode(r))).toEqual(r);
    expect(codec.encode(["a\tb", "c\\n"])).toBe("a\\tb\tc\\\\n");
    expect(codec.encode([1, true, null, undefined])).toBe("1\ttrue\t\t");
  });
  test("objects in fields order", () => {
    const codec = tsvCodec({ fields: ["id", "name", "lon"] });
    expect(codec.encode({ name: "x\ty", lon: 1.5, id: 3, extra: "ignored" })).toBe("3\tx\\ty\t1.5");
    expect(codec.decode("3\tx\\ty\t1.5")).toEqual({ id: "3", name: "x\ty", lon: "1.5" });
    expect(decodeError(codec, "1\t2").message).toBe("[geowatch] [tsv] line 1: expected 3 fields (id, name, lon), got 2");
    expect(caught(() => codec.encode({ id: {} })).message).toContain('field "id": expected text');
  });
  test("bad escapes and extra lines are DECODE errors with position", () => {
    const codec = tsvCodec();
    expect(decodeError(codec, "ab\tc\\qd").message).toBe('[geowatch] [tsv] line 1 column 5: unknown escape "\\q" (escapes are \\t \\n \\r \\\\)');
    expect(decodeError(codec, "a\\").message).toContain("line 1 column 2: a backslash at the end of a field");
    expect(decodeError(codec, "a\nb").message).toContain("expected one line, got 2");
    expect(decodeError(codec, "ok\nbad\\x", true).message).toContain("line 2 column 4");
    expect(codec.decode("a\tb\n")).toEqual(["a", "b"]);
  });
  test("pack is lines and appendable", () => {
    const codec = tsvCodec();
    expect(codec.pack!([["a", "b"], ["c\nd"]])).toBe("a\tb\nc\\nd\n");
    expectAppendable(codec, [["a", "b"], [""], ["x\ty"]], [["z"]]);
  });
  test("list alias and option validation", () => {
    const list = getCodec("list", { fields: ["a"] });
    expect(list.name).toBe("list");
    expect(list.decode("x")).toEqual({ a: "x" });
    const err = caught(() => tsvCodec({ fields: ["a", "a", ""], sep: 1 } as never));
    expect(err.code).toBe("CONFIG");
    expect(err.message).toContain("options.fields[2]: a field name cannot be empty");
    expect(err.message).toContain("field names must be unique");
    expect(err.message).toMatch(/options: .*sep/);
  });
});

describe("csv", () => {
  test("RFC 4180 quoting edge cases round trip", () => {
    const codec = csvCodec();
    const rows = [
      ["plain", "with,comma", 'with "quote"', "multi\nline", "crlf\r\nline", "", " spaced "],
      ['"', '""', ",", "\r", "ü🌍"],
      [""],
      ["", ""],
      ["=1+1", "'x", "#"],
    ];
    for (const r of rows) expect(codec.decode(codec.encode(r))).toEqual(r);
    expect(codec.encode(["a", "b,c", 'd"e', "f\ng"])).toBe('a,"b,c","d""e","f\ng"');
    expect(codec.encode([""])).toBe('""');
    expect(codec.encode(["", ""])).toBe(",");
    expect(codec.decode('"a ""b"" c",d')).toEqual(['a "b" c', "d"]);
    expect(codec.decode("a,,")).toEqual(["a", "", ""]);
    expect(codec.decode("a,b\r\n")).toEqual(["a", "b"]);
  });
  test("malformed input names line and column", () => {
    const codec = csvCodec();
    expect(decodeError(codec, 'ab,c"d').message).toBe(
      '[geowatch] [csv] line 1 column 5: quote inside an unquoted field (quote the field and write the quote as "")',
    );
    expect(decodeError(codec, '"ab"x,c').message).toContain('line 1 column 5: unexpected "x" after a closing quote');
    expect(decodeError(codec, 'a\r\nb,"open\nstill', true).message).toBe("[geowatch] [csv] line 2 column 3: quoted field is never closed");
    expect(decodeError(codec, '"x\ny"\n"z"q', true).message).toContain("line 3 column 4");
    expect(decodeError(codec, "a\nb").message).toContain("expected one record, got 2 (another starts on line 2");
  });
  test("pack/unpack without header is appendable; blank lines skipped", () => {
    const codec = csvCodec();
    expect(codec.pack!([["a", "b"], ["c"]])).toBe("a,b\r\nc\r\n");
    expectAppendable(codec, [["a", "b,c"], [""], ["multi\r\nline", '"']], [["z"]]);
    expect(codec.unpack!("a\n\n\r\nb\r\n")).toEqual([["a"], ["b"]]);
  });
  test("header: objects, header written once, not appendable", () => {
    const codec = csvCodec({ header: true });
    expect(codec.appendable).toBe(false);
    expect(codec.contentType).toContain("header=present");
    const values = [{ id: "1", name: "Zoë, \"Z\"" }, { id: "2", note: "multi\nline" }];
    const body = text(codec.pack!(values));
    expect(body).toBe('id,name,note\r\n1,"Zoë, ""Z""",\r\n2,,"multi\nline"\r\n');
    expect(codec.unpack!(body)).toEqual([
      { id: "1", name: 'Zoë, "Z"', note: "" },
      { id: "2", name: "", note: "multi\nline" },
    ]);
    expect(codec.encode({ a: 1, b: "x" })).toBe("a,b\r\n1,x");
    expect(codec.decode("a,b\r\n1,x")).toEqual({ a: "1", b: "x" });
    expect(decodeError(codec, "a,b\n1,2,3\n", true).message).toBe("[geowatch] [csv] line 2: expected 2 fields as in the header, got 3");
    expect(decodeError(codec, "a,a\n1,2").message).toContain('line 1: duplicate column "a"');
    expect(decodeError(codec, "a,b").message).toContain("got no record");
    expect(codec.unpack!("")).toEqual([]);
    expect(codec.pack!([])).toBe("");
  });
  test("fields, delimiter and eol options", () => {
    const codec = csvCodec({ fields: ["lon", "lat"], delimiter: ";", eol: "\n" });
    expect(codec.pack!([{ lat: 2, lon: "1;5" }])).toBe('"1;5";2\n');
    expect(codec.decode('"1;5";2')).toEqual({ lon: "1;5", lat: "2" });
    expect(decodeError(codec, "1;2;3").message).toContain("line 1: expected 2 fields (lon, lat), got 3");
    expectAppendable(codec, [{ lon: "1", lat: "2" }], [{ lon: "3", lat: "4" }]);
    const tab = csvCodec({ delimiter: "\t" });
    expect(tab.decode(tab.encode(["a\tb", "c"]))).toEqual(["a\tb", "c"]);
    const err = caught(() => csvCodec({ delimiter: '"', eol: "\r" } as never));
    expect(err.code).toBe("CONFIG");
    expect(err.message).toContain("options.delimiter: cannot be a quote or a line break");
    expect(err.message).toContain("options.eol:");
  });
  test("a __proto__ column stays a plain field", () => {
    const codec = csvCodec({ header: true });
    const [record] = codec.unpack!("__proto__,b\nx,y\n") as Array<Record<string, string>>;
    expect(Object.getPrototypeOf(record)).toBe(Object.prototype);
    expect(Object.keys(record!)).toEqual(["__proto__", "b"]);
  });
});

describe("registry", () => {
  test("knows every built-in codec", () => {
    expect(Object.keys(codecRegistry).sort()).toEqual(["csv", "geojson", "json", "list", "ndjson", "plain", "template", "tsv"]);
    expect(getCodec("geojson")).toBe(geojsonCodec);
    expect(getCodec("csv", { header: true }).appendable).toBe(false);
    // `template` needs its templates; every other codec builds with no options.
    for (const [name, factory] of Object.entries(codecRegistry)) {
      expect(factory(name === "template" ? { templates: { default: "x" } } : undefined).name).toBe(name);
    }
  });
  test("unknown names and stray options are CONFIG errors", () => {
    const err = caught(() => getCodec("xml"));
    expect(err.code).toBe("CONFIG");
    expect(err.message).toBe('[geowatch] unknown codec "xml" (known: plain, json, ndjson, geojson, tsv, list, csv, template)');
    expect(caught(() => getCodec("toString")).code).toBe("CONFIG");
    expect(caught(() => getCodec("json", { pretty: true })).message).toBe('[geowatch] [json] codec takes no options (got "pretty")');
  });
});
