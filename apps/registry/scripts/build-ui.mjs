// Bundles the browser UI (src/ui/app.ts + Leaflet) into dist/ui, with Leaflet's CSS and images: no CDN.
import { cpSync, mkdirSync } from "node:fs";
import { createRequire } from "node:module";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";
import { build } from "esbuild";

const root = join(dirname(fileURLToPath(import.meta.url)), "..");
const out = join(root, "dist", "ui");
mkdirSync(out, { recursive: true });
await build({
  entryPoints: [join(root, "src", "ui", "app.ts")],
  bundle: true,
  format: "esm",
  target: "es2022",
  minify: true,
  sourcemap: true,
  outfile: join(out, "app.js"),
  logLevel: "warning",
});
const leaflet = dirname(createRequire(import.meta.url).resolve("leaflet/dist/leaflet.css"));
cpSync(join(leaflet, "leaflet.css"), join(out, "leaflet.css"));
cpSync(join(leaflet, "images"), join(out, "images"), { recursive: true });
cpSync(join(root, "src", "ui", "app.css"), join(out, "app.css"));
