// One build config for every package: ESM + .d.ts from src/index.ts (and any extra entries given).
import { defineConfig } from "tsup";

export function geowatchBuild(extra = {}) {
  return defineConfig({
    entry: ["src/index.ts"],
    format: ["esm"],
    dts: true,
    sourcemap: true,
    clean: true,
    target: "node22",
    platform: "node",
    // Keep `node:` specifiers: `node:sqlite` has no bare-name alias.
    removeNodeProtocol: false,
    ...extra,
  });
}
