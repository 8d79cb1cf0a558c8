import { createRequire } from "node:module";
import { join } from "node:path";
import { pathToFileURL } from "node:url";

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
