// Publishes events.ndjson to the `geoserver` topic exchange, as GeoServer's notification module would
// (routing key geoserver.catalog or geoserver.data), with publisher confirms. Run from apps/broker's
// dependencies: node examples/gnip49/publish.mjs (GEOWATCH_AMQP_URL, default the test server's port).
import { readFileSync } from "node:fs";
import { createRequire } from "node:module";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";

const here = dirname(fileURLToPath(import.meta.url));
const require = createRequire(join(here, "../../apps/broker/package.json"));
const { connect } = require("amqplib");

const url = process.env.GEOWATCH_AMQP_URL ?? "amqp://guest:guest@127.0.0.1:25672";
const conn = await connect(url);
const ch = await conn.createConfirmChannel();
await ch.assertExchange("geoserver", "topic", { durable: true });
const lines = readFileSync(join(here, "events.ndjson"), "utf8").split("\n").filter((l) => l.trim() !== "");
for (const line of lines) {
  const type = JSON.parse(line).type;
  ch.publish("geoserver", type === "Data" ? "geoserver.data" : "geoserver.catalog", Buffer.from(line), { persistent: true, contentType: "application/json" });
}
await ch.waitForConfirms();
await conn.close();
console.log(`published ${lines.length} events to exchange "geoserver" at ${url.replace(/\/\/[^@]*@/, "//")}`);
