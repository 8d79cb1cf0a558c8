import { mkdtemp, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { producerSuite } from "@geowatch/testkit";
import { feedProducer, feedServer } from "../src/index.js";

// The feed's "server" is its own database and HTTP server: what was sent is read back through the served
// JSON feed, with the site user's token.
producerSuite("feed", {
  capabilities: {},
  setup: async () => {
    const dir = await mkdtemp(join(tmpdir(), "gw-feed-conf-"));
    const db = join(dir, "feeds.db");
    const tokensFile = join(dir, "tokens.json");
    await writeFile(tokensFile, JSON.stringify({ site: "site-token" }));
    const server = await feedServer({ db, tokensFile });
    return {
      producer: () => feedProducer({ db, user: "site" }),
      readBack: async (n, timeoutMs) => {
        const deadline = Date.now() + timeoutMs;
        for (;;) {
          const res = await fetch(`${server.url}/feeds/site.json?token=site-token`);
          const body = (await res.json()) as { items: Array<{ content_text: string }> };
          if (body.items.length >= n || Date.now() > deadline) return body.items.map((i) => i.content_text);
          await new Promise((r) => setTimeout(r, 100));
        }
      },
      teardown: async () => {
        await server.close();
        await rm(dir, { recursive: true, force: true });
      },
    };
  },
});
