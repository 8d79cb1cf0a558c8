import { createConnection, createServer } from "node:net";
import type { AddressInfo, Server, Socket } from "node:net";

/** A TCP proxy on 127.0.0.1 for fault tests: point a client at `url`/`port`, then `cut()` and `restore()`. */
export interface TcpProxy {
  /** The local port the proxy listens on. */
  readonly port: number;
  /** `host:port` of the proxy. */
  readonly address: string;
  /** Connections accepted so far (including refused ones while cut). */
  readonly accepted: number;
  /** Connections open now. */
  readonly open: number;
  /** Whether the proxy is cut now. */
  readonly isCut: boolean;
  /** Destroys every open connection and refuses new ones (they are reset at once) until `restore()`. */
  cut(): void;
  /** Forwards new connections again. */
  restore(): void;
  /** Stops listening and destroys every connection. */
  close(): Promise<void>;
}

export interface TcpProxyOptions {
  /** Where connections go. */
  targetHost: string;
  targetPort: number;
  /** Port to listen on; default 0 (a free port). */
  port?: number;
}

/**
 * Starts a TCP proxy on 127.0.0.1 that forwards every connection to the target. While cut, open
 * connections are destroyed and new ones are reset as soon as they are accepted, which is what a
 * client sees when a server or the network between goes away.
 */
export async function startTcpProxy(options: TcpProxyOptions): Promise<TcpProxy> {
  const sockets = new Set<Socket>();
  let cut = false;
  let accepted = 0;

  const server: Server = createServer((client) => {
    accepted++;
    if (cut) {
      client.resetAndDestroy();
      return;
    }
    const upstream = createConnection({ host: options.targetHost, port: options.targetPort });
    sockets.add(client);
    sockets.add(upstream);
    const end = () => {
      sockets.delete(client);
      sockets.delete(upstream);
      client.destroy();
      upstream.destroy();
    };
    client.on("error", end).on("close", end);
    upstream.on("error", end).on("close", end);
    client.pipe(upstream);
    upstream.pipe(client);
  });

  await new Promise<void>((resolve, reject) => {
    server.once("error", reject);
    server.listen(options.port ?? 0, "127.0.0.1", () => {
      server.off("error", reject);
      resolve();
    });
  });
  const port = (server.address() as AddressInfo).port;

  const destroyAll = () => {
    for (const s of sockets) s.resetAndDestroy();
    sockets.clear();
  };

  return {
    port,
    address: `127.0.0.1:${port}`,
    get accepted() {
      return accepted;
    },
    get open() {
      // Each forwarded connection holds two sockets.
      return Math.floor(sockets.size / 2);
    },
    get isCut() {
      return cut;
    },
    cut() {
      cut = true;
      destroyAll();
    },
    restore() {
      cut = false;
    },
    close() {
      cut = true;
      destroyAll();
      return new Promise<void>((resolve) => server.close(() => resolve()));
    },
  };
}
