import { createConnection, createServer } from "node:net";
import type { AddressInfo, Server } from "node:net";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { startTcpProxy } from "../src/index.js";

/** An echo server on loopback: every byte comes back. */
let echo: Server;
let echoPort: number;

beforeAll(async () => {
  // The proxy resets its upstream sockets on cut(): the echo side sees ECONNRESET, which is expected.
  echo = createServer((s) => s.on("error", () => undefined).pipe(s));
  await new Promise<void>((r) => echo.listen(0, "127.0.0.1", r));
  echoPort = (echo.address() as AddressInfo).port;
});
afterAll(() => new Promise<void>((r) => echo.close(() => r())));

/** Sends `text` through a new connection and resolves with what came back, or rejects with the socket error. */
function roundTrip(port: number, text: string): Promise<string> {
  return new Promise((resolve, reject) => {
    const s = createConnection({ host: "127.0.0.1", port });
    let got = "";
    s.setEncoding("utf8");
    s.on("data", (d: string) => {
      got += d;
      if (got.length >= text.length) {
        s.end();
        resolve(got);
      }
    });
    s.on("error", reject);
    s.on("close", () => reject(new Error(`closed after ${JSON.stringify(got)}`)));
    s.write(text);
  });
}

describe("startTcpProxy", () => {
  it("forwards bytes both ways", async () => {
    const proxy = await startTcpProxy({ targetHost: "127.0.0.1", targetPort: echoPort });
    try {
      expect(proxy.address).toBe(`127.0.0.1:${proxy.port}`);
      expect(await roundTrip(proxy.port, "hello ✓")).toBe("hello ✓");
      expect(proxy.accepted).toBe(1);
    } finally {
      await proxy.close();
    }
  });

  it("cut() destroys open connections and refuses new ones; restore() forwards again", async () => {
    const proxy = await startTcpProxy({ targetHost: "127.0.0.1", targetPort: echoPort });
    try {
      const open = createConnection({ host: "127.0.0.1", port: proxy.port });
      await new Promise<void>((r) => open.once("connect", () => r()));
      await new Promise((r) => setTimeout(r, 50));
      expect(proxy.open).toBe(1);
      const closed = new Promise<void>((r) => open.once("close", () => r()));
      open.on("error", () => undefined);
      proxy.cut();
      expect(proxy.isCut).toBe(true);
      await closed;
      expect(open.destroyed, "the open connection was destroyed by cut()").toBe(true);
      await expect(roundTrip(proxy.port, "while cut")).rejects.toThrow();
      proxy.restore();
      expect(proxy.isCut).toBe(false);
      expect(await roundTrip(proxy.port, "after restore")).toBe("after restore");
    } finally {
      await proxy.close();
    }
  });

  it("close() stops listening", async () => {
    const proxy = await startTcpProxy({ targetHost: "127.0.0.1", targetPort: echoPort });
    await proxy.close();
    await expect(roundTrip(proxy.port, "x")).rejects.toThrow();
  });
});
