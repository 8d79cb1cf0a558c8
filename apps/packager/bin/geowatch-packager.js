#!/usr/bin/env node
const [major, minor] = process.versions.node.split(".").map(Number);
if (major < 22 || (major === 22 && minor < 13)) {
  process.stderr.write(`[geowatch-packager] Node.js >= 22.13 is required (this is ${process.version}); node:sqlite needs it.\n`);
  process.exit(1);
}
const { main } = await import("../dist/cli.js");
process.exitCode = await main(process.argv.slice(2));
