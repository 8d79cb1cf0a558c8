import { readdirSync, readFileSync } from "node:fs";
import { createRequire } from "node:module";
import { dirname, join } from "node:path";
import { fileURLToPath, pathToFileURL } from "node:url";
import type { GeoWatchPackage } from "@geowatch/core";

/**
 * Imports a package the way the user's project sees it (resolved from `cwd`), falling back to the
 * packages installed with the CLI itself. This is how third-party backends named in config load.
 */
export function projectImporter(cwd = process.cwd()): (specifier: string) => Promise<Record<string, unknown>> {
  const fromProject = createRequire(join(cwd, "package.json"));
  return async (specifier) => {
    let resolved: string | undefined;
    try {
      resolved = specifier.startsWith(".") || specifier.startsWith("/") ? join(cwd, specifier) : fromProject.resolve(specifier);
    } catch {
      resolved = undefined;
    }
    if (resolved) return (await import(pathToFileURL(resolved).href)) as Record<string, unknown>;
    return (await import(specifier)) as Record<string, unknown>;
  };
}

/**
 * Lists the installed `@geowatch/*` packages that declare backends, stages or codecs in their package.json
 * (`"geowatch": { "backends": [...], "stages": [...], "codecs": [...] }`), seen from the project and from the CLI itself.
 */
export function discoverPackages(cwd = process.cwd()): () => Promise<GeoWatchPackage[]> {
  return async () => {
    const found = new Map<string, GeoWatchPackage>();
    const roots = [cwd, dirname(fileURLToPath(import.meta.url))];
    for (const root of roots) {
      for (let dir = root; ; dir = dirname(dir)) {
        const scope = join(dir, "node_modules", "@geowatch");
        let names: string[] = [];
        try {
          names = readdirSync(scope);
        } catch {
          names = [];
        }
        for (const n of names) {
          const name = `@geowatch/${n}`;
          if (found.has(name)) continue;
          try {
            const pkg = JSON.parse(readFileSync(join(scope, n, "package.json"), "utf8")) as { geowatch?: { backends?: unknown; stages?: unknown; codecs?: unknown } };
            const g = pkg.geowatch;
            if (!g) continue;
            const list = (v: unknown) => (Array.isArray(v) ? v.filter((x): x is string => typeof x === "string") : undefined);
            const entry: GeoWatchPackage = { name };
            const backends = list(g.backends);
            const stages = list(g.stages);
            if (backends) entry.backends = backends;
            if (stages) entry.stages = stages;
            const codecs = list(g.codecs);
            if (codecs) entry.codecs = codecs;
            found.set(name, entry);
          } catch {
            // Not a readable package: not ours to list.
          }
        }
        if (dirname(dir) === dir) break;
      }
    }
    return [...found.values()];
  };
}
