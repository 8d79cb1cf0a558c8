export { Registry, openStorage } from "./registry.js";
export type { Job, IndexUpdate, RegistryOptions } from "./registry.js";
export { registryConfigSchema, resolveConfig, loadConfig, loadCheckedConfig } from "./config.js";
export type { RegistryConfig, RegistryConfigInput } from "./config.js";
export { buildServer } from "./http/server.js";
export { sqliteStorage } from "./storage/sqlite.js";
export { postgresStorage } from "./storage/postgres.js";
export type {
  BBox, Bucket, Check, CheckInput, Facets, FacetResult, Layer, LayerInput, RegistryStorage, SearchQuery, SearchResult, Service,
  ServiceInput, ServiceType, SortKey,
} from "./storage/types.js";
export { SERVICE_TYPES } from "./storage/types.js";
export { harvest, guessType, createFetcher, discoverEsriServices } from "./harvest/index.js";
export type { Harvested, HarvestContext, Fetcher, FetcherOptions } from "./harvest/index.js";
export { parseXml } from "./harvest/xml.js";
export { parseWmsCapabilities } from "./harvest/wms.js";
export { parseSearchParams, searchResponse, SEARCH_DEFAULTS } from "./search.js";
export { handleCsw } from "./csw/server.js";
export type { CswContext, CswRequest, CswResponse } from "./csw/server.js";
export { HostLimiter } from "./checks.js";
export { main } from "./cli.js";
export { openJobChannel, checkJobChannel } from "./channel.js";
export type { JobChannel, ChannelConsumer, Importer } from "./channel.js";
