/**
 * Finds backends and stages by package name: `backend: kafka` is the package `@geowatch/kafka`, a
 * third-party one is named by its full package name, and stages come from the installed packages that
 * declare them in their package.json (`"geowatch": { "stages": ["geofence"] }`). Core holds no list of
 * package names.
 */
import { GeoWatchError, reasonOf } from "./errors.js";
import { isBackendDefinition, isCodecDefinition, isStageDefinition, type BackendDefinition, type CodecDefinition, type StageDefinition } from "./define.js";

/** An installed package that declares GeoWatch backends or stages in its package.json `geowatch` field. */
export interface GeoWatchPackage {
  name: string;
  backends?: string[];
  stages?: string[];
  codecs?: string[];
}

export type Importer = (specifier: string) => Promise<Record<string, unknown>>;

export interface ResolverOptions {
  backends?: BackendDefinition[];
  stages?: StageDefinition[];
  codecs?: CodecDefinition[];
  importer?: Importer;
  /** Lists installed packages that declare backends or stages (for stages by name, and "did you mean"). */
  discover?: () => Promise<GeoWatchPackage[]>;
}

/** `route_by_fence` and `routeByFence` name the same stage. */
const stageKey = (name: string) => name.replace(/_([a-z0-9])/g, (_, c: string) => c.toUpperCase()).toLowerCase();

const looksLikePackage = (name: string) => name.startsWith("@") || name.startsWith(".") || name.startsWith("/") || name.includes("/");

export class Resolver {
  private readonly backends = new Map<string, BackendDefinition>();
  private readonly stages = new Map<string, StageDefinition>();
  private readonly codecs = new Map<string, CodecDefinition>();
  private readonly failed = new Map<string, GeoWatchError>();
  private discovered: Promise<GeoWatchPackage[]> | undefined;

  constructor(private readonly o: ResolverOptions = {}) {
    for (const b of o.backends ?? []) this.backends.set(b.name, b);
    for (const s of o.stages ?? []) this.stages.set(stageKey(s.name), s);
    for (const c of o.codecs ?? []) this.codecs.set(c.name, c);
  }

  register(def: BackendDefinition): void {
    this.backends.set(def.name, def);
  }

  /** Backends loaded so far (registered, and those a config named). */
  loadedBackends(): BackendDefinition[] {
    return [...this.backends.values()];
  }

  loadedStages(): StageDefinition[] {
    return [...new Set(this.stages.values())];
  }

  /** Codecs from packages loaded so far. */
  loadedCodecs(): CodecDefinition[] {
    return [...this.codecs.values()];
  }

  /** Every installed package that declares backends or stages. */
  installed(): Promise<GeoWatchPackage[]> {
    this.discovered ??= (this.o.discover?.() ?? Promise.resolve([])).catch(() => []);
    return this.discovered;
  }

  /** Loads every installed backend and stage (for `geowatch backends` and the JSON Schema). */
  async loadAll(): Promise<{ errors: string[] }> {
    const errors: string[] = [];
    for (const pkg of await this.installed()) {
      for (const b of pkg.backends ?? []) await this.backend(b).catch((e: unknown) => errors.push(reasonOf(e)));
      for (const s of pkg.stages ?? []) await this.stage(s).catch((e: unknown) => errors.push(reasonOf(e)));
      for (const c of pkg.codecs ?? []) await this.codec(c).catch((e: unknown) => errors.push(reasonOf(e)));
    }
    return { errors };
  }

  async backend(name: string): Promise<BackendDefinition> {
    const known = this.backends.get(name);
    if (known) return known;
    const byPackage = looksLikePackage(name);
    const declared = byPackage ? undefined : (await this.installed()).find((p) => p.backends?.includes(name))?.name;
    // A short name is `@geowatch/<name>`, else an unscoped third-party package of that name.
    const candidates = byPackage ? [name] : declared ? [declared] : [`@geowatch/${name}`, name];
    const missing = async () => {
      const names = new Set([...this.backends.keys(), ...(await this.installed()).flatMap((p) => p.backends ?? [])]);
      const hint = suggest(name, names);
      return byPackage
        ? `backend "${name}": package "${name}" is not installed${hint}`
        : `unknown backend "${name}": no installed package provides it (looked for ${candidates.join(" and ")})${hint}; name a third-party backend by its package name`;
    };
    let mod: Record<string, unknown> | undefined;
    let specifier = candidates[0]!;
    for (const [i, c] of candidates.entries()) {
      specifier = c;
      const last = i === candidates.length - 1;
      mod = await this.load(c, `backend "${name}"`, missing, !last).catch((err: unknown) => {
        if (!last && err === NOT_INSTALLED) return undefined;
        throw err;
      });
      if (mod) break;
    }
    if (!mod) throw new GeoWatchError("CONFIG", await missing());
    const defs = Object.values(mod).filter(isBackendDefinition);
    const def = defs.find((d) => d.name === name) ?? (defs.length === 1 ? defs[0] : undefined);
    if (!def) throw new GeoWatchError("CONFIG", `package "${specifier}" exports no GeoWatch backend${byPackage ? "" : ` named "${name}"`} (make one with defineBackend)`);
    this.backends.set(name, def);
    if (def.name !== name) this.backends.set(def.name, def);
    return def;
  }

  async stage(name: string): Promise<StageDefinition> {
    const known = this.stages.get(stageKey(name));
    if (known) return known;
    if (looksLikePackage(name)) {
      const mod = await this.load(name, `stage "${name}"`, async () => `stage "${name}": package "${name}" is not installed`);
      const defs = Object.values(mod).filter(isStageDefinition);
      const def = isStageDefinition(mod.default) ? mod.default : defs.length === 1 ? defs[0] : undefined;
      if (!def) throw new GeoWatchError("CONFIG", `package "${name}" exports no GeoWatch stage (make one with defineStage)`);
      this.stages.set(stageKey(name), def);
      return def;
    }
    const installed = await this.installed();
    const pkg = installed.find((p) => p.stages?.some((s) => stageKey(s) === stageKey(name)));
    if (!pkg) {
      const names = new Set([...[...this.stages.values()].map((s) => s.name), ...installed.flatMap((p) => p.stages ?? [])]);
      throw new GeoWatchError("CONFIG", `unknown stage "${name}"${suggest(name, names)} (installed: ${[...names].sort().join(", ") || "none"}); name a third-party stage by its package name`);
    }
    const mod = await this.load(pkg.name, `stage "${name}"`, async () => `stage "${name}": package "${pkg.name}" is not installed`);
    for (const d of Object.values(mod).filter(isStageDefinition)) this.stages.set(stageKey(d.name), d);
    const def = this.stages.get(stageKey(name));
    if (!def) throw new GeoWatchError("CONFIG", `package "${pkg.name}" declares stage "${name}" but exports no such stage definition`);
    return def;
  }

  /**
   * A codec from a package (the built-in codecs never come here): by package name, or by the name an
   * installed package declares in `"geowatch": { "codecs": [...] }`.
   */
  async codec(name: string, builtIn: Iterable<string> = []): Promise<CodecDefinition> {
    const known = this.codecs.get(name);
    if (known) return known;
    const installed = await this.installed();
    const specifier = looksLikePackage(name) ? name : installed.find((p) => p.codecs?.includes(name))?.name;
    if (!specifier) {
      const names = new Set([...builtIn, ...this.codecs.keys(), ...installed.flatMap((p) => p.codecs ?? [])]);
      throw new GeoWatchError("CONFIG", `unknown codec "${name}"${suggest(name, names)} (known: ${[...names].sort().join(", ")}); install the package that provides it`);
    }
    const mod = await this.load(specifier, `codec "${name}"`, async () => `codec "${name}": package "${specifier}" is not installed`);
    for (const d of Object.values(mod).filter(isCodecDefinition)) this.codecs.set(d.name, d);
    const defs = Object.values(mod).filter(isCodecDefinition);
    const def = this.codecs.get(name) ?? (looksLikePackage(name) && defs.length === 1 ? defs[0] : undefined);
    if (!def) throw new GeoWatchError("CONFIG", `package "${specifier}" ${looksLikePackage(name) ? "exports no GeoWatch codec" : `declares codec "${name}" but exports no such codec definition`} (make one with defineCodec)`);
    this.codecs.set(name, def);
    return def;
  }

  /** Imports a package; a missing package gets `missing()`'s message, one that fails to load reports its own error. */
  private async load(specifier: string, what: string, missing: () => Promise<string>, quietIfMissing = false): Promise<Record<string, unknown>> {
    const seen = this.failed.get(specifier);
    if (seen) throw seen;
    const importer = this.o.importer ?? ((s: string) => import(s) as Promise<Record<string, unknown>>);
    try {
      return await importer(specifier);
    } catch (err) {
      if (quietIfMissing && isMissing(err, specifier)) throw NOT_INSTALLED;
      const e = isMissing(err, specifier)
        ? new GeoWatchError("CONFIG", await missing())
        : new GeoWatchError("CONFIG", `${what}: package "${specifier}" failed to load: ${firstLine(reasonOf(err))}`, { cause: err });
      this.failed.set(specifier, e);
      throw e;
    }
  }
}

/** Thrown by `load` when a package that is only one candidate is not installed. */
const NOT_INSTALLED = new GeoWatchError("CONFIG", "not installed");

/** True when the import failed because `specifier` itself is not installed (not one of its dependencies). */
function isMissing(err: unknown, specifier: string): boolean {
  const code = (err as { code?: string }).code;
  if (code !== "ERR_MODULE_NOT_FOUND" && code !== "MODULE_NOT_FOUND") return false;
  const msg = (err as Error).message ?? "";
  return msg.includes(`'${specifier}'`) || msg.includes(`"${specifier}"`) || !/imported from|Require stack/.test(msg);
}

const firstLine = (s: string) => s.split("\n")[0]!;

/** ` (did you mean "kafka"?)` when a known name is close. */
export function suggest(name: string, known: Iterable<string>): string {
  let best: string | undefined;
  let bestD = Infinity;
  for (const k of known) {
    const d = distance(name.toLowerCase(), k.toLowerCase());
    if (d < bestD) [best, bestD] = [k, d];
  }
  return best !== undefined && bestD <= Math.max(1, Math.floor(name.length / 3)) ? ` (did you mean "${best}"?)` : "";
}

function distance(a: string, b: string): number {
  const row = Array.from({ length: b.length + 1 }, (_, j) => j);
  for (let i = 1; i <= a.length; i++) {
    let prev = row[0]!;
    row[0] = i;
    for (let j = 1; j <= b.length; j++) {
      const cur = row[j]!;
      row[j] = Math.min(row[j]! + 1, row[j - 1]! + 1, prev + (a[i - 1] === b[j - 1] ? 0 : 1));
      prev = cur;
    }
  }
  return row[b.length]!;
}
