import { createServer, type Server } from "node:http";
import type { AddressInfo } from "node:net";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { checkUrl, fetchWithPolicy, isPrivateAddress, urlPolicy } from "../src/net.js";

let server: Server;
let base: string;
const seen: { url: string; auth: string | undefined }[] = [];

beforeAll(async () => {
  server = createServer((req, res) => {
    seen.push({ url: req.url ?? "", auth: req.headers.authorization });
    if (req.url === "/hello") return res.end("hello");
    if (req.url === "/to-hello") return res.writeHead(302, { location: "/hello" }).end();
    if (req.url === "/to-localhost") return res.writeHead(302, { location: `http://localhost:${(server.address() as AddressInfo).port}/hello` }).end();
    if (req.url === "/to-metadata") return res.writeHead(301, { location: "http://169.254.169.254/latest/meta-data/" }).end();
    if (req.url === "/to-file") return res.writeHead(302, { location: "file:///etc/passwd" }).end();
    if (req.url === "/loop") return res.writeHead(302, { location: "/loop" }).end();
    if (req.url === "/big") return res.end("x".repeat(10_000));
    res.writeHead(404).end();
  });
  await new Promise<void>((r) => server.listen(0, "127.0.0.1", r));
  base = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
});
afterAll(() => new Promise<void>((r) => server.close(() => r())));

describe("URL policy", () => {
  it("knows private, loopback, link-local and mapped addresses", () => {
    for (const a of ["127.0.0.1", "10.1.2.3", "172.20.0.1", "192.168.1.1", "169.254.169.254", "100.64.0.1", "0.0.0.0", "::1", "fe80::1", "fd00::1", "::ffff:127.0.0.1", "::"]) {
      expect(isPrivateAddress(a), a).toBe(true);
    }
    for (const a of ["8.8.8.8", "1.1.1.1", "2606:4700:4700::1111", "::ffff:8.8.8.8"]) expect(isPrivateAddress(a), a).toBe(false);
  });

  it("refuses loopback by default, with the reason, and without fetching", async () => {
    const before = seen.length;
    await expect(fetchWithPolicy(`${base}/hello`, {}, urlPolicy())).rejects.toMatchObject({ code: "URL_REFUSED", message: expect.stringMatching(/127\.0\.0\.1.*private, loopback or link-local/) });
    await expect(checkUrl("http://localhost:1/x", urlPolicy())).rejects.toMatchObject({ code: "URL_REFUSED" });
    await expect(checkUrl("http://[::1]:1/x", urlPolicy())).rejects.toMatchObject({ code: "URL_REFUSED" });
    expect(seen.length).toBe(before);
  });

  it("fetches a private host when allowed by name or by allow_private", async () => {
    expect(await (await fetchWithPolicy(`${base}/hello`, {}, urlPolicy({ allowHosts: ["127.0.0.1"] }))).text()).toBe("hello");
    expect(await (await fetchWithPolicy(`${base}/hello`, {}, urlPolicy({ allowPrivate: true }))).text()).toBe("hello");
    expect(await (await fetchWithPolicy(`${base}/hello`, {}, urlPolicy({ allowHosts: ["127.0.0.0/8"] }))).text()).toBe("hello");
  });

  it("refuses hosts off the allow list and on the deny list", async () => {
    await expect(checkUrl("https://example.org/x", urlPolicy({ allowHosts: ["*.example.com"] }))).rejects.toThrow(/not on the allow list/);
    await expect(checkUrl(`${base}/x`, urlPolicy({ allowPrivate: true, denyHosts: ["127.0.0.1"] }))).rejects.toThrow(/deny list/);
    await expect(checkUrl("ftp://example.com/x", urlPolicy())).rejects.toThrow(/scheme "ftp" is not allowed/);
    await expect(checkUrl("not a url", urlPolicy())).rejects.toThrow(/not a valid absolute URL/);
    expect(() => urlPolicy({ allowHosts: ["bad host!"] })).toThrow(/allow_hosts: "bad host!"/);
  });

  it("re-checks every redirect hop", async () => {
    const only127 = urlPolicy({ allowHosts: ["127.0.0.1"] });
    expect(await (await fetchWithPolicy(`${base}/to-hello`, {}, only127)).text()).toBe("hello");
    await expect(fetchWithPolicy(`${base}/to-localhost`, {}, only127)).rejects.toThrow(/"localhost" is not on the allow list/);
    await expect(fetchWithPolicy(`${base}/to-metadata`, {}, urlPolicy({ allowHosts: ["127.0.0.1"] }))).rejects.toThrow(/169\.254\.169\.254/);
    await expect(fetchWithPolicy(`${base}/to-file`, {}, urlPolicy({ allowPrivate: true }))).rejects.toThrow(/scheme "file"/);
    await expect(fetchWithPolicy(`${base}/loop`, {}, urlPolicy({ allowPrivate: true }), { maxRedirects: 3 })).rejects.toThrow(/too many redirects/);
  });

  it("drops credentials when a redirect leaves the origin, keeps them within it", async () => {
    seen.length = 0;
    const p = urlPolicy({ allowPrivate: true });
    await (await fetchWithPolicy(`${base}/to-hello`, { headers: { authorization: "Bearer s3cret" } }, p)).text();
    expect(seen.map((s) => s.auth)).toEqual(["Bearer s3cret", "Bearer s3cret"]);
    seen.length = 0;
    await (await fetchWithPolicy(`${base}/to-localhost`, { headers: { authorization: "Bearer s3cret" } }, p)).text();
    expect(seen.map((s) => s.auth)).toEqual(["Bearer s3cret", undefined]);
  });

  it("checks the address at connect time (a name that resolves privately is refused at the socket)", async () => {
    // localhost passes a name-only allow list, and is still refused when it resolves to loopback.
    const p = urlPolicy({ allowHosts: ["localhost"] });
    const port = (server.address() as AddressInfo).port;
    expect(await (await fetchWithPolicy(`http://localhost:${port}/hello`, {}, p)).text()).toBe("hello");
    const strict = { ...p, refuseHost: () => undefined, refuseAddress: (h: string, a: string) => (isPrivateAddress(a) ? `"${h}" resolves to ${a}` : undefined) };
    await expect(fetchWithPolicy(`http://localhost:${port}/hello`, {}, strict)).rejects.toMatchObject({ code: "URL_REFUSED" });
  });

  it("cuts off a body larger than max_bytes", async () => {
    const res = await fetchWithPolicy(`${base}/big`, {}, urlPolicy({ allowPrivate: true }), { maxBytes: 1000 });
    await expect(res.text()).rejects.toThrow();
  });
});
