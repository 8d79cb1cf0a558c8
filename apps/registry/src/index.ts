export { sqliteStorage } from "./storage/sqlite.js";
export { postgresStorage } from "./storage/postgres.js";
export type {
  BBox, Check, CheckInput, Facets, FacetResult, Layer, LayerInput, RegistryStorage, SearchQuery, SearchResult, Service,
  ServiceInput, ServiceType, SortKey, Bucket,
} from "./storage/types.js";
export { SERVICE_TYPES } from "./storage/types.js";
