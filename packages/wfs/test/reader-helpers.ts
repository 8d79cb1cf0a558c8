/** Test helpers for the reader tests: the servers' URLs and a local HTTP server that answers badly on purpose. */
import { createServer } from "node:http";
import type { IncomingMessage, ServerResponse } from "node:http";
import type { AddressInfo } from "node:net";
import { requireEnv } from "@geowatch/testkit";

export const MAPSERVER_HINT = "Start MapServer: bash .ci/servers/mapserver.sh start && source .servers/env/mapserver.env";

/** The MapServer WFS endpoint (`$URL?SERVICE=WFS`); OGC API Features at `$URL/geowatch/ogcapi`. */
export function mapserverUrl(): string {
  return requireEnv("GEOWATCH_MAPSERVER_URL", MAPSERVER_HINT);
}

/** The GeoJSON file behind MapServer's `poll` layer, which the polling tests rewrite. */
export function pollFile(): string {
  return requireEnv("GEOWATCH_MAPSERVER_POLL_FILE", MAPSERVER_HINT);
}

export interface FakeServer {
  url: string;
  requests: string[];
  close(): Promise<void>;
}

/** A loopback HTTP server answering every request with `handler`; records request URLs. */
export async function fakeServer(handler: (req: IncomingMessage, res: ServerResponse) => void): Promise<FakeServer> {
  const requests: string[] = [];
  const server = createServer((req, res) => {
    requests.push(req.url ?? "");
    handler(req, res);
  });
  await new Promise<void>((done) => server.listen(0, "127.0.0.1", done));
  const { port } = server.address() as AddressInfo;
  return {
    url: `http://127.0.0.1:${port}/wfs`,
    requests,
    close: () =>
      new Promise<void>((done) => {
        server.closeAllConnections();
        server.close(() => done());
      }),
  };
}

/** The points layer's features as make-data.py builds them: what the filter tests compare the server with. */
export interface PointProps {
  num: number;
  name: string;
  kind: string;
  value: number;
  updated: string;
}
