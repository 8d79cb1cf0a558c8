// The DataStore source against the real CKAN: paging style detection, filters, q, offset, limit, counts.
import { urlPolicy } from "@geowatch/core";
import { beforeAll, describe, expect, it } from "vitest";
import { countRows, datastorePages } from "../src/sources/datastore.js";
import type { PagingStyle } from "../src/sources/datastore.js";
import { ckanToken, makeResource, searchUrl } from "./helpers.js";

const N = 2300;
let rid = "";
const policy = urlPolicy({ allowHosts: ["127.0.0.1"] });

async function collect(q: Parameters<typeof datastorePages>[0], pageSize = 500) {
  let style: PagingStyle | undefined;
  const rows: unknown[][] = [];
  let fields: { id: string }[] = [];
  let pages = 0;
  for await (const p of datastorePages(q, { policy, pageSize, timeoutMs: 30_000 }, (s) => (style = s))) {
    fields = p.fields;
    rows.push(...p.rows);
    pages++;
  }
  return { style, rows, fields, pages };
}

describe("datastore source (CKAN 2.12)", () => {
  beforeAll(async () => {
    rid = await makeResource(N);
  });

  it("pages through every row with the include_next_page cursor, in _id order", async () => {
    const r = await collect({ apiUrl: searchUrl(), resourceId: rid });
    expect(r.style).toBe("cursor");
    expect(r.rows).toHaveLength(N);
    expect(r.pages).toBe(5);
    const idIdx = r.fields.findIndex((f) => f.id === "_id");
    const ids = r.rows.map((x) => Number(x[idIdx]));
    expect(new Set(ids).size).toBe(N);
    expect(ids).toEqual([...ids].sort((a, b) => a - b));
    const countIdx = r.fields.findIndex((f) => f.id === "count");
    expect(r.rows.map((x) => Number(x[countIdx])).reduce((a, b) => a + b, 0)).toBe((N * (N - 1)) / 2);
  });

  it("applies filters, q, offset and limit", async () => {
    const filtered = await collect({ apiUrl: searchUrl(), resourceId: rid, filters: { "Habitat type": "wetland" } });
    expect(filtered.rows).toHaveLength(Math.ceil(N / 3));
    const q = await collect({ apiUrl: searchUrl(), resourceId: rid, q: "CAT-1234" });
    expect(q.rows.length).toBeGreaterThanOrEqual(1);
    const nameIdx = q.fields.findIndex((f) => f.id === "Catalog number");
    expect(q.rows.some((x) => x[nameIdx] === "CAT-1234")).toBe(true);
    const window = await collect({ apiUrl: searchUrl(), resourceId: rid, offset: 1000, limit: 1100 }, 300);
    expect(window.rows).toHaveLength(1100);
    const countIdx = window.fields.findIndex((f) => f.id === "count");
    expect(window.rows[0]![countIdx]).toBe(1000);
    expect(window.rows.at(-1)![countIdx]).toBe(2099);
  });

  it("counts rows (limit and offset applied) and sends the API key", async () => {
    expect(await countRows({ apiUrl: searchUrl(), resourceId: rid }, { policy, timeoutMs: 10_000 })).toBe(N);
    expect(await countRows({ apiUrl: searchUrl(), resourceId: rid, offset: 2000, limit: 10_000, key: ckanToken() }, { policy, timeoutMs: 10_000 })).toBe(N - 2000);
    await expect(countRows({ apiUrl: searchUrl(), resourceId: "no-such-resource" }, { policy, timeoutMs: 10_000 })).rejects.toThrow(/datastore_search failed \(404/);
  });

  it("refuses the loopback CKAN without an allow-list entry", async () => {
    await expect(countRows({ apiUrl: searchUrl(), resourceId: rid }, { policy: urlPolicy({}), timeoutMs: 10_000 })).rejects.toThrow(/private, loopback/);
  });
});
