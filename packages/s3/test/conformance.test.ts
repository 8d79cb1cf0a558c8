import { storeSuite } from "@geowatch/testkit";
import { s3Store } from "../src/index.js";
import { bucket, endpoint } from "./server.js";

storeSuite("s3", {
  capabilities: { append: true, read: true },
  async setup() {
    const b = await bucket("conf");
    return { store: () => s3Store({ bucket: b.name, endpoint: endpoint() }), teardown: b.drop };
  },
});
