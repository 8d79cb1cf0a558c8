import { execFile } from "node:child_process";
import { mkdtemp, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { promisify } from "node:util";
import { fileURLToPath } from "node:url";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { Message, Stage } from "@geowatch/core";
import { openSubscriptionStore, subscriptionsStage } from "../src/index.js";

const run = promisify(execFile);
const BIN = fileURLToPath(new URL("../bin/geowatch-subscriptions.js", import.meta.url));
const quiet = { debug() {}, info() {}, warn() {}, error() {} };
let dir: string;
let db: string;
let stage: Stage;

const square = (x0: number, y0: number, x1: number, y1: number) => ({ type: "Polygon", coordinates: [[[x0, y0], [x1, y0], [x1, y1], [x0, y1], [x0, y0]]] });
const event = (id: string, meta: Record<string, unknown>, data: unknown = null): Message => {
  const metadata = { id, ...meta };
  return { value: { metadata, data }, metadata };
};
const who = (out: Message[]) => out.map((m) => `${String(m.metadata!.id)}>${String(m.metadata!.channel)}:${String(m.metadata!.recipient)}@${(m.routes ?? []).join("+")}`).sort();

beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), "gw-subs-"));
  db = join(dir, "subs.db");
  await writeFile(join(dir, "fences.geojson"), JSON.stringify({ type: "FeatureCollection", features: [{ type: "Feature", id: "nyc", properties: {}, geometry: square(-74.3, 40.5, -73.7, 40.95) }] }));
  const s = openSubscriptionStore(db);
  s.add({ user: "alice", channel: "email", address: "alice@example.org", actiontypes: ["create", "delete"], targettypes: ["layer"] });
  s.add({ user: "alice", channel: "feed" });
  s.add({ user: "bob", channel: "slack", address: "#roads", featuretypes: ["tiger:roads"] });
  s.add({ user: "carol", channel: "feed", area: { fence: "nyc" } });
  s.add({ user: "dave", channel: "email", address: "dave@example.org", area: { polygon: square(0, 0, 10, 10) as never }, targettypes: ["data"] });
  // Two matching subscriptions of one recipient on one channel: one message.
  s.add({ user: "bob", channel: "slack", address: "#roads", actiontypes: ["edit"] });
  s.close();
  const parsed = subscriptionsStage.parse({ db, fences: "fences.geojson", routes: { email: "mail", feed: ["feeds"], slack: "slack" } }, { baseDir: dir });
  if (!parsed.ok) throw new Error(JSON.stringify(parsed.problems));
  stage = await subscriptionsStage.create(parsed.options, { name: "subs", logger: quiet, secret: () => undefined, baseDir: dir });
  await stage.open?.();
});
afterAll(async () => {
  await stage.close?.();
  await rm(dir, { recursive: true, force: true });
});

describe("subscriptions stage", () => {
  it("sends each event to exactly the recipients whose subscriptions match, routed by channel", async () => {
    const out = await stage.process([
      event("e1", { actiontype: "create", targettype: "layer", featuretype: "topp:states", bbox: [-124, 25, -100, 49] }),
      event("e2", { actiontype: "edit", targettype: "data", featuretype: "tiger:roads", bbox: [-74.02, 40.7, -73.95, 40.78] }),
      event("e3", { actiontype: "update", targettype: "layer", featuretype: "x:y" }, { type: "Feature", properties: {}, geometry: { type: "Point", coordinates: [5, 5] } }),
      event("e4", { actiontype: "edit", targettype: "data", featuretype: "x:z" }, { type: "Point", coordinates: [5, 5] }),
    ]);
    expect(out.dead ?? []).toEqual([]);
    expect(who(out.pass)).toEqual([
      "e1>email:alice@example.org@mail",
      "e1>feed:alice@feeds",
      "e2>feed:alice@feeds",
      "e2>feed:carol@feeds",
      "e2>slack:#roads@slack",
      "e3>feed:alice@feeds",
      "e4>email:dave@example.org@mail",
      "e4>feed:alice@feeds",
      "e4>slack:#roads@slack",
    ]);
    const m = out.pass.find((p) => p.metadata!.recipient === "carol")!;
    expect(m.metadata).toMatchObject({ subscriber: "carol", channel: "feed", recipient: "carol", id: "e2", actiontype: "edit" });
    expect((m.value as { metadata: unknown }).metadata).toEqual(m.metadata);
  });

  it("dead-letters a recipient whose channel routes does not list, and delivers the others", async () => {
    const s = openSubscriptionStore(db);
    const extra = s.add({ user: "zed", channel: "sms", address: "+15550100", actiontypes: ["purge"] });
    s.close();
    const out = await stage.process([event("e7", { actiontype: "purge", targettype: "layer" })]);
    expect(who(out.pass)).toEqual(["e7>feed:alice@feeds"]);
    expect(out.dead!.map((d) => d.reason)).toEqual([`[geowatch] [subscriptions] subs: subscription ${extra.id} (zed) uses channel "sms", which routes does not list (it lists email, feed, slack)`]);
    expect(out.dead![0]!.message.metadata).toMatchObject({ recipient: "+15550100", channel: "sms" });
    const again = openSubscriptionStore(db);
    again.remove(extra.id);
    again.close();
  });

  it("dead-letters a message that is not an event", async () => {
    const out = await stage.process([{ value: "hello" }, { value: { metadata: {}, data: null }, metadata: {} }]);
    expect(out.pass).toEqual([]);
    expect(out.dead!.map((d) => d.reason)).toEqual([
      "[geowatch] [subscriptions] subs: not an event: the message has no envelope metadata with actiontype or targettype",
      "[geowatch] [subscriptions] subs: not an event: the message has no envelope metadata with actiontype or targettype",
    ]);
  });

  it("sees subscriptions the CLI adds and removes from the next batch on", async () => {
    const ev = () => event("e9", { actiontype: "delete", targettype: "style", featuretype: "s:t" });
    expect(who((await stage.process([ev()])).pass)).toEqual(["e9>feed:alice@feeds"]);
    const added = await run(process.execPath, [BIN, "add", "--db", db, "--user", "erin", "--channel", "email", "--address", "erin@example.org", "--targettype", "style"]);
    const id = added.stdout.trim();
    expect(id).toMatch(/^\d+$/);
    expect(who((await stage.process([ev()])).pass)).toEqual(["e9>email:erin@example.org@mail", "e9>feed:alice@feeds"]);
    await run(process.execPath, [BIN, "remove", "--db", db, id]);
    expect(who((await stage.process([ev()])).pass)).toEqual(["e9>feed:alice@feeds"]);
  });
});

describe("geowatch-subscriptions CLI", () => {
  const cli = (args: string[]) =>
    run(process.execPath, [BIN, ...args]).then(
      (r) => ({ code: 0, out: r.stdout, err: r.stderr }),
      (e: { code: number; stdout: string; stderr: string }) => ({ code: e.code, out: e.stdout, err: e.stderr }),
    );

  it("prints help and exits 0", async () => {
    const r = await cli(["--help"]);
    expect(r.code).toBe(0);
    expect(r.out).toContain("Usage: geowatch-subscriptions <command>");
  });

  it("exits 2 on usage errors and invalid subscriptions, naming the problem", async () => {
    expect(await cli(["frobnicate", "--db", db])).toMatchObject({ code: 2, err: expect.stringContaining('unknown command "frobnicate"') });
    expect(await cli(["add", "--db", db, "--channel", "feed"])).toMatchObject({ code: 2, err: expect.stringContaining("add needs --user") });
    expect(await cli(["add", "--db", db, "--user", "x", "--channel", "email", "--address", "not-an-address"])).toMatchObject({ code: 2, err: expect.stringContaining("is not an email address") });
    expect(await cli(["add", "--db", db, "--user", "x", "--channel", "feed", "--polygon", '{"type":"Polygon","coordinates":[[[0,0],[1,0],[0,0]]]}'])).toMatchObject({ code: 2, err: expect.stringContaining("area.polygon") });
    expect(await cli(["list", "--bogus"])).toMatchObject({ code: 2 });
  });

  it("lists, and exits 1 when removing a subscription that does not exist", async () => {
    const r = await cli(["list", "--db", db, "--user", "bob", "--json"]);
    expect(r.code).toBe(0);
    const list = JSON.parse(r.out) as Array<{ user: string; address: string }>;
    expect(list.map((s) => s.address)).toEqual(["#roads", "#roads"]);
    expect(await cli(["remove", "--db", db, "99999"])).toMatchObject({ code: 1, err: expect.stringContaining("no subscription 99999") });
  });
});
