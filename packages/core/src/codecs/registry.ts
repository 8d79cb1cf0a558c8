import { GeoWatchError } from "../errors.js";
import type { Codec } from "../types.js";
import { csvCodec } from "./csv.js";
import { geojsonCodec } from "./geojson.js";
import { jsonCodec } from "./json.js";
import { ndjsonCodec } from "./ndjson.js";
import { plainCodec } from "./plain.js";
import { templateCodec } from "./template.js";
import { noOptions } from "./text.js";
import { createTsvCodec } from "./tsv.js";

/** A codec factory as config names it: `codec: csv` or `codec: [csv, { header: true }]`. */
export type CodecFactory = (options?: Record<string, unknown>) => Codec;

const fixed = (codec: Codec): CodecFactory => (options) => {
  noOptions(codec.name, options);
  return codec;
};

/** The built-in codecs by config name; `list` is the original name of `tsv`. */
export const codecRegistry: Record<string, CodecFactory> = {
  plain: fixed(plainCodec as Codec),
  json: fixed(jsonCodec),
  ndjson: fixed(ndjsonCodec),
  geojson: fixed(geojsonCodec as Codec),
  tsv: (options) => createTsvCodec(options, "tsv") as Codec,
  list: (options) => createTsvCodec(options, "list") as Codec,
  csv: (options) => csvCodec(options) as Codec,
  template: (options) => templateCodec(options),
};

/** The built-in codec `name` with `options`; a CONFIG error for names it does not know. */
export function getCodec(name: string, options?: Record<string, unknown>): Codec {
  const factory = Object.hasOwn(codecRegistry, name) ? codecRegistry[name] : undefined;
  if (!factory) {
    throw new GeoWatchError("CONFIG", `unknown codec "${name}" (known: ${Object.keys(codecRegistry).join(", ")})`);
  }
  return factory(options);
}
