/** `reproject` and `buffer`: rewrite a message's geometry, keeping the Feature or envelope around it. */
import { GeoWatchError } from "@geowatch/core";
import type { Stage } from "@geowatch/core";
import { buffer as turfBuffer } from "@turf/buffer";
import proj4 from "proj4";
import type { Geometry } from "./geojson.js";
import { geometryStage, Reject, replaceGeometry } from "./message.js";
import { bufferSchema, parseOptions, reprojectSchema } from "./options.js";
import type { BufferOptions, ReprojectOptions, SpatialStageContext } from "./options.js";

/** A stage replacing each message's geometry with `fn`'s result, keeping the Feature or envelope around it. */
function transformStage(name: string, fn: (g: Geometry) => Geometry): Stage {
  return geometryStage(name, (message, g) => ({ ...message, value: replaceGeometry(message.value, fn(g)) }));
}

function mapCoordinates(g: Geometry, fn: (p: number[], path: string) => number[]): Geometry {
  if (g.type === "GeometryCollection") return { type: g.type, geometries: g.geometries.map((c) => mapCoordinates(c, fn)) };
  const walk = (a: unknown, path: string): unknown => {
    const arr = a as unknown[];
    return typeof arr[0] === "number" ? fn(arr as number[], path) : arr.map((c, i) => walk(c, `${path}[${i}]`));
  };
  return { type: g.type, coordinates: walk(g.coordinates, "coordinates") } as Geometry;
}

/** Reprojects geometries between EPSG:4326, EPSG:3857 and proj4 definition strings. */
export function reproject(options: ReprojectOptions, ctx: SpatialStageContext = {}): Stage {
  const o = parseOptions<ReprojectOptions>(reprojectSchema, options, "reproject");
  for (const key of ["from", "to"] as const) {
    try {
      proj4(o[key], o[key], [0, 0]);
    } catch (err) {
      throw new GeoWatchError("CONFIG", `invalid reproject options: ${key}: unknown CRS ${JSON.stringify(o[key])}`, { backend: "spatial", path: key, cause: err });
    }
  }
  const converter = proj4(o.from, o.to);
  return transformStage(ctx.name ?? "reproject", (g) => mapCoordinates(g, (p, path) => {
    const [x, y] = converter.forward([p[0]!, p[1]!]);
    if (!Number.isFinite(x) || !Number.isFinite(y)) throw new Reject(`position ${JSON.stringify(p)} at ${path} has no finite image in ${o.to}`);
    return p.length > 2 ? [x!, y!, ...p.slice(2)] : [x!, y!];
  }));
}

/** Buffers geometries by a distance (turf), replacing each geometry with its buffer polygon. */
export function buffer(options: BufferOptions, ctx: SpatialStageContext = {}): Stage {
  const o = parseOptions<BufferOptions>(bufferSchema, options, "buffer");
  const units = o.units ?? "kilometers";
  const steps = o.steps ?? 8;
  return transformStage(ctx.name ?? "buffer", (g) => {
    if (g.type === "GeometryCollection") throw new Reject("buffer does not take a GeometryCollection");
    const out = turfBuffer({ type: "Feature", properties: {}, geometry: g } as never, o.distance, { units, steps }) as
      | { geometry?: Geometry | null }
      | undefined;
    if (!out?.geometry) throw new Reject(`buffer of ${o.distance} ${units} leaves an empty geometry`);
    return out.geometry;
  });
}
