// Koop (an Esri FeatureServer over GeoJSON files) for the registry's tests, on 127.0.0.1 only.
// usage: node koop-server.cjs PORT DATA_DIR
const Koop = require("@koopjs/koop-core");
const provider = require("@koopjs/provider-file-geojson");

// The provider joins dataDir to the working directory: the script runs in .servers/registry-koop with "data".
const [port, dataDir] = [Number(process.argv[2]), process.argv[3]];
const koop = new Koop({ logLevel: "error" });
koop.register(provider, { dataDir });
koop.server.listen(port, "127.0.0.1", () => process.stdout.write(`koop listening on 127.0.0.1:${port}\n`));
