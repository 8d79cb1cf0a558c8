import { defineBackend } from "@geowatch/core";
import { wfsProducerSchema, wfsStoreSchema } from "./options.js";
import { createWfsConsumer } from "./poll.js";
import { checkReaderOptions, wfsConsumerSchema } from "./reader-options.js";
import { createWfsProducer } from "./producer.js";
import { createWfsStore } from "./store.js";

/** The wfs backend: `backend: wfs` in config. */
export const wfsBackend = defineBackend({
  name: "wfs",
  description: "WFS-T 1.1.0/2.0.0 and OGC API Features (Part 4) writes with a result per record, idempotent by feature id; a paging and polling reader",
  consumer: {
    options: wfsConsumerSchema,
    create: (o, ctx) => createWfsConsumer(o, { logger: ctx.logger, name: ctx.name, secret: (ref) => ctx.secret(ref) }),
    check: (o) => checkReaderOptions(o),
  },
  producer: { options: wfsProducerSchema, create: (o, ctx) => createWfsProducer(o, { secret: (ref) => ctx.secret(ref) }) },
  store: { options: wfsStoreSchema, create: (o, ctx) => createWfsStore(o, { secret: (ref) => ctx.secret(ref) }) },
});

export { wfsProducer, editsOf } from "./producer.js";
export type { Action, Edit, EditResult, EditWriter } from "./producer.js";
export { wfsStore } from "./store.js";
export { wfsHttp } from "./http.js";
export type { WfsHttp, WfsRequest, WfsResponse, SecretReader } from "./http.js";
export { parseTransactionResponse } from "./transaction.js";
export { gmlCodec } from "./gml-codec.js";
export { parseXml, escapeXml, parseExceptionReport } from "./xml.js";
export { encodeFeature, encodeGeometry, decodeFeatures, decodeGeometry } from "./gml.js";
export type { Feature, Geometry, GmlVersion, AxisOrder } from "./gml.js";
export { readStore, layerReader, readAll, getCapabilities } from "./reader.js";
export type { LayerReader, FeaturePage, WfsCapabilities } from "./reader.js";
export { wfsConsumer } from "./poll.js";
export { wfsReaderShape, wfsConsumerSchema } from "./reader-options.js";
export type { WfsReaderOptions, WfsPollOptions } from "./reader-options.js";
export { encodeFilter, filterSchema } from "./filter.js";
export type { FilterExpr, FilterCondition, FilterValue, BboxFilter } from "./filter.js";
export { wfsConnectionShape, wfsWriterShape, wfsProducerSchema, wfsStoreSchema } from "./options.js";
export type { WfsConnectionOptions, WfsProducerOptions, WfsStoreOptions } from "./options.js";
