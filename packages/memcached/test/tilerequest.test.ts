// The tilerequest codec: the testkit's codec checks plus the original format's edge cases. No server needed.
import { describe, expect, it } from "vitest";
import { isGeoWatchError } from "@geowatch/core";
import { codecSuite } from "@geowatch/testkit";
import { parseIsoDate, tilerequestCodec, tilerequestCodecDefinition } from "../src/index.js";
import type { TileRequest } from "../src/index.js";

const samples: TileRequest[] = [
  { date: "2016-05-04T12:34:56.789012", source: "osm", z: 3, x: 4, y: 2, ext: "png" },
  { date: "2026-12-01T19:00:00Z", source: "hiu:imagery-2026", z: 0, x: 0, y: 0, ext: "jpg" },
  { date: "2026-12-01T19:00:00+02:00", source: "terrain", z: 18, x: 262143, y: 1, ext: "pbf" },
  { date: "2026-12-01", source: "ünïcode-layer", z: 30, x: 2 ** 30 - 1, y: 2 ** 30 - 1, ext: "webp" },
];

codecSuite("tilerequest", {
  codec: tilerequestCodec(),
  samples,
  bad: [
    "",
    "2016-05-04T12:34:56;osm,3,4,2",
    "2016-05-04T12:34:56;osm,3,4,2,png,extra",
    "not-a-date;osm,3,4,2,png",
    "2016-13-04T12:34:56;osm,3,4,2,png",
    "2016-05-04T12:34:56;,3,4,2,png",
    "2016-05-04T12:34:56;osm,three,4,2,png",
    "2016-05-04T12:34:56;osm,3,8,2,png",
    "2016-05-04T12:34:56;osm,3,4,-2,png",
    "2016-05-04T12:34:56;osm,31,0,0,png",
    "2016-05-04T12:34:56;osm,3,4,2,p.ng",
    "2016-05-04T12:34:56 osm,3,4,2,png",
    "a;b\nc,1,0,0,png",
    new Uint8Array([0x32, 0x30, 0xff, 0x3b]),
  ],
});

function decodeError(line: string): Error {
  try {
    tilerequestCodec().decode(line);
  } catch (err) {
    return err as Error;
  }
  throw new Error(`"${line}" decoded`);
}

describe("tilerequest codec", () => {
  it("decodes the original's lines (python isoformat, microseconds, no zone) and encodes them back unchanged", () => {
    const line = "2016-05-04T12:34:56.789012;osm,3,4,2,png";
    const codec = tilerequestCodec();
    expect(codec.decode(line)).toEqual(samples[0]);
    expect(codec.encode(codec.decode(line))).toBe(line);
    expect(codec.decode(`${line}\r\n`)).toEqual(samples[0]);
  });

  it("a bad line is a DECODE error naming the line and the field", () => {
    const cases: Array<[string, string, RegExp]> = [
      ["2016-05-04;osm,three,4,2,png", "z", /z "three" is not a non-negative integer/],
      ["2016-05-04;osm,3,8,2,png", "x", /x 8 is outside 0\.\.7 at zoom 3/],
      ["2016-05-04;osm,3,4,9,png", "y", /y 9 is outside 0\.\.7/],
      ["yesterday;osm,3,4,2,png", "date", /date "yesterday" is not an ISO 8601 date/],
      ["2016-05-04;osm,3,4,2", "line", /has 4 comma-separated fields after the date, not 5/],
      ["2016-05-04;osm,3,4,2,", "ext", /ext "" is not 1-16 letters or digits/],
      ["2016-05-04;my layer,3,4,2,png", "source", /source "my layer" is empty or holds a space/],
    ];
    for (const [line, field, message] of cases) {
      const err = decodeError(line);
      expect(isGeoWatchError(err, "DECODE"), String(err)).toBe(true);
      expect((err as { path?: string }).path).toBe(field);
      expect(err.message).toContain(JSON.stringify(line));
      expect(err.message).toMatch(message);
    }
  });

  it("max_zoom bounds z", () => {
    const codec = tilerequestCodec({ maxZoom: 12 });
    expect(codec.decode("2016-05-04;osm,12,0,0,png")).toMatchObject({ z: 12 });
    expect(() => codec.decode("2016-05-04;osm,13,0,0,png")).toThrow(/z 13 is above the highest zoom level 12/);
  });

  it("encode refuses values it could not read back (ENCODE, naming the field)", () => {
    const codec = tilerequestCodec();
    const bad: Array<[unknown, RegExp]> = [
      [{ ...samples[0], source: "a,b" }, /source/],
      [{ ...samples[0], z: 1.5 }, /z 1.5 is not a non-negative integer/],
      [{ ...samples[0], x: 99 }, /x is outside 0\.\.7/],
      [{ ...samples[0], date: "soon" }, /date "soon"/],
      [null, /value is not an object/],
    ];
    for (const [v, re] of bad) {
      let err: unknown;
      try {
        codec.encode(v as TileRequest);
      } catch (e) {
        err = e;
      }
      expect(isGeoWatchError(err, "ENCODE"), String(err)).toBe(true);
      expect(String((err as Error).message)).toMatch(re);
    }
  });

  it("metadata holds every field for keys and filters; with a ttl, expires and expired", () => {
    const now = Date.now();
    const fresh = new Date(now - 10_000).toISOString();
    const stale = new Date(now - 7200_000).toISOString();
    const codec = tilerequestCodec({ ttl: 3600 });
    const m = codec.metadataOf!(codec.decode(`${fresh};osm,3,4,2,png`))!;
    expect(m).toMatchObject({ actiontype: "request", targettype: "tile", source: "osm", z: 3, x: 4, y: 2, ext: "png", date: fresh, expired: false });
    expect(Date.parse(m.expires as string)).toBe(Date.parse(fresh) + 3600_000);
    expect(codec.metadataOf!(codec.decode(`${stale};osm,3,4,2,png`))).toMatchObject({ expired: true });
    expect(tilerequestCodec().metadataOf!(codec.decode(`${stale};osm,3,4,2,png`))).not.toHaveProperty("expired");
    // A store body read back keeps only the requests that have not expired.
    const body = codec.pack!([codec.decode(`${stale};osm,1,0,0,png`), codec.decode(`${fresh};osm,1,1,1,png`)]);
    expect(codec.unpack!(body)).toEqual([{ date: fresh, source: "osm", z: 1, x: 1, y: 1, ext: "png" }]);
    expect(tilerequestCodec().unpack!(body)).toHaveLength(2);
  });

  it("dates: zones, fractions and impossible days", () => {
    expect(parseIsoDate("2016-05-04T12:34:56.789012")).toBe(Date.UTC(2016, 4, 4, 12, 34, 56, 789));
    expect(parseIsoDate("2016-05-04T12:34:56+02:00")).toBe(Date.UTC(2016, 4, 4, 10, 34, 56));
    expect(parseIsoDate("2016-05-04T12:34:56-0130")).toBe(Date.UTC(2016, 4, 4, 14, 4, 56));
    expect(parseIsoDate("2016-02-30")).toBeUndefined();
    expect(parseIsoDate("2024-02-29")).toBe(Date.UTC(2024, 1, 29));
    expect(parseIsoDate("2000-02-29")).toBe(Date.UTC(2000, 1, 29));
    expect(parseIsoDate("1900-02-29")).toBeUndefined();
    expect(parseIsoDate("2023-04-31")).toBeUndefined();
    expect(parseIsoDate("2016-05-04T24:00:00")).toBeUndefined();
  });

  it("the definition validates its options with paths (as config spells them)", () => {
    const bad = tilerequestCodecDefinition.parse({ ttl: -1, max_zoom: 31, colour: 1 });
    expect(bad.ok).toBe(false);
    const paths = bad.ok ? [] : bad.problems.map((p) => p.path).sort();
    expect(paths).toEqual(["colour", "max_zoom", "ttl"]);
    const good = tilerequestCodecDefinition.parse({ ttl: 60, max_zoom: 20 });
    expect(good).toEqual({ ok: true, options: { ttl: 60, maxZoom: 20 } });
    expect(tilerequestCodecDefinition.create(good.ok ? good.options : {}).decode("2016-05-04;osm,20,0,0,png")).toMatchObject({ z: 20 });
  });
});
