// A local Slack Web API server (the testkit's) for trying the all-channels config without a Slack workspace.
// Prints the env to use, then every message it accepts, until Ctrl-C.
import { createRequire } from "node:module";
import { dirname, join } from "node:path";
import { fileURLToPath, pathToFileURL } from "node:url";

const here = dirname(fileURLToPath(import.meta.url));
const require = createRequire(join(here, "../../apps/broker/package.json"));
const { startSlackServer } = await import(pathToFileURL(require.resolve("@geowatch/testkit")).href);

const server = await startSlackServer({ tokens: ["xoxb-geowatch-example"], channels: [{ id: "C0000ROADS", name: "gis-roads" }] }, Number(process.env.PORT ?? 8090));
console.log(`export GEOWATCH_SLACK_API_URL=${server.url}`);
console.log("export GEOWATCH_SLACK_TOKEN=xoxb-geowatch-example");
let shown = 0;
const timer = setInterval(() => {
  for (const m of server.messages.slice(shown)) console.log(`#${m.requested.replace(/^#/, "")}: ${m.text}`);
  shown = server.messages.length;
}, 500);
process.once("SIGINT", () => {
  clearInterval(timer);
  void server.close().then(() => process.exit(0));
});
