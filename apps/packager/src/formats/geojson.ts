/** A GeoJSON FeatureCollection, streamed feature by feature (RFC 7946: lon/lat, WGS 84). */
import type { Field } from "../sources/datastore.js";
import type { EntrySink } from "../zip.js";
import { geometrySource } from "./geometry.js";
import type { GeometrySource } from "./geometry.js";
import { visibleFields } from "./types.js";
import type { RowWriter, WriterContext } from "./types.js";

export function geojsonWriter(ctx: WriterContext): RowWriter {
  let sink: EntrySink | undefined;
  let geo: GeometrySource | undefined;
  let props: { i: number; key: string }[] = [];
  let first = true;
  return {
    async begin(fields: Field[]) {
      geo = geometrySource(fields);
      const skip = new Set(geo?.columns ?? []);
      props = visibleFields(fields)
        .filter((i) => !skip.has(i))
        .map((i) => ({ i, key: fields[i]!.id }));
      sink = ctx.zip.entry(`${ctx.name}.geojson`);
      await sink.write('{"type":"FeatureCollection","features":[\n');
    },
    async write(rows) {
      let out = "";
      for (const row of rows) {
        const properties: Record<string, unknown> = {};
        for (const p of props) properties[p.key] = row[p.i] ?? null;
        const feature = { type: "Feature", geometry: geo ? geo.read(row) : null, properties };
        out += (first ? "" : ",\n") + JSON.stringify(feature);
        first = false;
      }
      await sink!.write(out);
    },
    async end() {
      await sink!.write("\n]}\n");
      sink!.end();
    },
  };
}
