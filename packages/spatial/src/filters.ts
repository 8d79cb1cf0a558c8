/** `bboxFilter` and `fenceFilter`: pass messages whose geometry meets a box or the fences; dead-letter invalid GeoJSON. */
import type { Stage } from "@geowatch/core";
import { FenceIndex, resolveFences } from "./fence-index.js";
import type { Predicate } from "./fence-index.js";
import type { Geometry } from "./geojson.js";
import { geometryStage } from "./message.js";
import { bboxFilterSchema, fenceFilterSchema, parseOptions } from "./options.js";
import type { BboxFilterOptions, FenceFilterOptions, SpatialStageContext } from "./options.js";

/** A stage passing the messages whose geometry `keep` accepts. */
function filterStage(name: string, keep: (g: Geometry) => boolean): Stage {
  return geometryStage(name, (message, g) => (keep(g) ? message : undefined));
}

/** Passes messages whose geometry intersects (or lies within) a bounding box. */
export function bboxFilter(options: BboxFilterOptions, ctx: SpatialStageContext = {}): Stage {
  const o = parseOptions<BboxFilterOptions>(bboxFilterSchema, options, "bboxFilter");
  const [minX, minY, maxX, maxY] = o.bbox;
  const predicate: Predicate = o.predicate ?? "intersects";
  const box = new FenceIndex([{
    id: "bbox",
    properties: {},
    geometry: { type: "Polygon", coordinates: [[[minX, minY], [maxX, minY], [maxX, maxY], [minX, maxY], [minX, minY]]] },
  }]);
  return filterStage(ctx.name ?? "bboxFilter", (g) => {
    if (g.type === "Point") {
      const x = g.coordinates[0]!, y = g.coordinates[1]!;
      return x >= minX && x <= maxX && y >= minY && y <= maxY;
    }
    return box.test(0, g, predicate);
  });
}

/** Passes messages whose geometry intersects any fence (or lies within one). */
export function fenceFilter(options: FenceFilterOptions, ctx: SpatialStageContext = {}): Stage {
  const o = parseOptions<FenceFilterOptions>(fenceFilterSchema, options, "fenceFilter");
  const index = resolveFences(o.fences, { idProperty: o.idProperty, baseDir: ctx.baseDir });
  const predicate: Predicate = o.predicate ?? "intersects";
  return filterStage(ctx.name ?? "fenceFilter", (g) =>
    g.type === "Point" ? index.queryPoint(g.coordinates[0]!, g.coordinates[1]!) > 0 : index.matching(g, predicate).length > 0);
}
