/** The registry's records and the one storage interface both engines implement. */

/** Service types, named as CSW/Hypermap name them. */
export type ServiceType =
  | "OGC:WMS"
  | "OGC:WFS"
  | "OGC:WMTS"
  | "OSGeo:TMS"
  | "OGC:CSW"
  | "OGC:API-Features"
  | "OGC:API-Records"
  | "ESRI:ArcGIS:MapServer"
  | "ESRI:ArcGIS:ImageServer"
  | "ESRI:ArcGIS:FeatureServer";

export const SERVICE_TYPES: readonly ServiceType[] = [
  "OGC:WMS", "OGC:WFS", "OGC:WMTS", "OSGeo:TMS", "OGC:CSW", "OGC:API-Features", "OGC:API-Records",
  "ESRI:ArcGIS:MapServer", "ESRI:ArcGIS:ImageServer", "ESRI:ArcGIS:FeatureServer",
];

/** [minx, miny, maxx, maxy] in EPSG:4326 (lon/lat). */
export type BBox = [number, number, number, number];

export interface ServiceInput {
  url: string;
  type: ServiceType;
  title?: string;
  abstract?: string;
  owner?: string;
  version?: string;
}

export interface Service extends ServiceInput {
  id: number;
  monitored: boolean;
  createdAt: number;
  harvestedAt: number | null;
  harvestOk: boolean | null;
  harvestError: string | null;
  layerCount: number;
  checksTotal: number;
  checksOk: number;
  reliability: number | null;
  recentReliability: number | null;
}

/** A layer (or a catalogue record): what is indexed and searched. */
export interface LayerInput {
  /** Stable public identifier (CSW dc:identifier). */
  identifier: string;
  name: string;
  title: string;
  abstract?: string;
  keywords?: string[];
  bbox?: BBox | null;
  crs?: string[];
  /** Epoch ms. */
  timeStart?: number | null;
  timeEnd?: number | null;
  type: ServiceType | string;
  url: string;
  owner?: string;
  /** Service-type specific facts a check needs (a WMTS matrix set, a tile format, an Esri layer id). */
  extra?: Record<string, unknown>;
}

export interface Layer extends Required<Omit<LayerInput, "bbox" | "timeStart" | "timeEnd" | "extra">> {
  id: number;
  serviceId: number | null;
  bbox: BBox | null;
  timeStart: number | null;
  timeEnd: number | null;
  extra: Record<string, unknown>;
  monitored: boolean;
  updatedAt: number;
  checksTotal: number;
  checksOk: number;
  reliability: number | null;
  recentReliability: number | null;
}

export interface CheckInput {
  serviceId: number;
  layerId?: number | null;
  ok: boolean;
  responseMs: number;
  message?: string;
  at?: number;
}

export interface Check extends CheckInput {
  id: number;
  at: number;
  layerId: number | null;
}

export type SortKey = "score" | "title" | "time" | "reliability" | "updated" | "distance";

/** A search, already parsed from the Search API's parameters (see search.ts). */
export interface SearchQuery {
  text?: string;
  bbox?: BBox;
  /** Overlap with [from, to]; either side open. Epoch ms. */
  timeFrom?: number;
  timeTo?: number;
  user?: string;
  type?: string;
  serviceId?: number;
  limit: number;
  offset: number;
  sort?: SortKey;
  sortDir?: "asc" | "desc";
}

export interface Bucket {
  value: string;
  count: number;
}

export interface Facets {
  /** Time histogram: start/end (epoch ms) and a fixed-length or calendar gap. */
  time?: { start: number; end: number; gap: string; limit?: number };
  /** Heatmap of bbox centres over a grid. */
  heatmap?: { bbox: BBox; columns: number; rows: number };
  textLimit?: number;
  userLimit?: number;
}

export interface FacetResult {
  time?: { start: string; end: string; gap: string; counts: Bucket[] };
  heatmap?: { columns: number; rows: number; minX: number; maxX: number; minY: number; maxY: number; counts_ints2D: number[][] | null };
  text?: Bucket[];
  user?: Bucket[];
}

export interface SearchResult {
  total: number;
  docs: Layer[];
  facets: FacetResult;
}

/** One storage interface; `sqlite` (embedded default) and `postgres` (PostGIS) implement it. */
export interface RegistryStorage {
  readonly engine: "sqlite" | "postgres";
  init(): Promise<void>;
  close(): Promise<void>;

  addService(s: ServiceInput): Promise<Service>;
  getService(id: number): Promise<Service | undefined>;
  findService(url: string, type: ServiceType): Promise<Service | undefined>;
  listServices(): Promise<Service[]>;
  updateService(id: number, patch: Partial<ServiceInput>): Promise<void>;
  deleteService(id: number): Promise<void>;
  /** Records a harvest's outcome; the layers of a successful one replace the service's layers. */
  recordHarvest(id: number, outcome: { ok: true; layers: LayerInput[] } | { ok: false; error: string }): Promise<number>;
  setMonitored(target: { serviceId: number } | { layerId: number }, monitored: boolean): Promise<void>;

  getLayer(id: number): Promise<Layer | undefined>;
  getLayerByIdentifier(identifier: string): Promise<Layer | undefined>;
  listLayers(serviceId: number): Promise<Layer[]>;
  /** Inserts or replaces stand-alone records (CSW Transaction, imports); returns how many. */
  upsertRecords(records: LayerInput[]): Promise<number>;
  deleteRecords(identifiers: string[]): Promise<number>;

  /** Stores a check and updates the target's counters and recent reliability over the last `recentN`. */
  addCheck(c: CheckInput, recentN: number): Promise<Check>;
  listChecks(target: { serviceId: number; layerId?: number | null }, limit: number): Promise<Check[]>;

  search(q: SearchQuery, facets?: Facets): Promise<SearchResult>;

  /**
   * Claims the period of a named schedule: true for exactly one caller per period across every process
   * sharing the storage (one conditional UPDATE: SQLite's write lock, PostgreSQL's row lock).
   */
  claimPeriod(name: string, periodMs: number, now?: number): Promise<boolean>;
  /**
   * Takes one of `slots` request slots of a host for `holder` until released or `ttlMs` passed (a killed
   * process's slot frees itself); undefined when all are taken. Shared by every process on the storage, so
   * `checks.per_host` holds across workers.
   */
  acquireHostSlot(host: string, slots: number, holder: string, ttlMs: number, now?: number): Promise<number | undefined>;
  releaseHostSlot(host: string, slot: number, holder: string): Promise<void>;
}
