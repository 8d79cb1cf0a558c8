// One test config for every package.
import { defineConfig } from "vitest/config";

export function geowatchTest(extra = {}) {
  return defineConfig({
    test: {
      include: ["test/**/*.test.ts"],
      testTimeout: 60_000,
      hookTimeout: 120_000,
      reporters: process.env.GEOWATCH_JSON_REPORT
        ? ["default", ["json", { outputFile: process.env.GEOWATCH_JSON_REPORT }]]
        : ["default"],
      ...extra,
    },
  });
}
