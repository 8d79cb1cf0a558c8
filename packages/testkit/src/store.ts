import { describe, expect, it } from "vitest";
import { guardStore, isGeoWatchError } from "@geowatch/core";
import type { Payload, StoreCapabilities } from "@geowatch/core";
import type { StoreCheck, StoreHarness, StoreSuiteOptions } from "./types.js";
import { UNICODE_SAMPLES } from "./samples.js";
import { runId, sameBytes, textOf, using } from "./util.js";

/** Writes with a store instance of its own, closed afterwards. */
async function write(h: StoreHarness, key: string, body: Payload, append = false): Promise<void> {
  await using(h.store, (s) => s.write({ key, body, contentType: "text/plain; charset=utf-8", append }));
}

/** Reads with a fresh store instance (so the value outlived the writer), else through `harness.read`. */
async function read(h: StoreHarness, key: string): Promise<Payload | undefined> {
  const viaStore = await using(h.store, async (s) => (s.read ? { value: await s.read(key) } : undefined));
  if (viaStore) return viaStore.value;
  if (h.read) return h.read(key);
  throw new Error("[geowatch-testkit] storeSuite needs store.read() or harness.read() to check what was written");
}

function expectBody(got: Payload | undefined, want: string, what: string): void {
  expect(got === undefined ? undefined : textOf(got), what).toBe(want);
  expect(sameBytes(got!, want), `${what} (byte-exact)`).toBe(true);
}

const roundTrip: StoreCheck = async (h) => {
  const key = `${runId()}-roundtrip`;
  const body = '{"type":"FeatureCollection","features":[]}\n';
  await write(h, key, body);
  expectBody(await read(h, key), body, "what was written reads back");
};

const replace: StoreCheck = async (h) => {
  const key = `${runId()}-replace`;
  await write(h, key, "first\n");
  await write(h, key, "second\n");
  expectBody(await read(h, key), "second\n", "a write without append replaces the value");
};

const append: StoreCheck = async (h, caps) => {
  if (!caps.append) throw new Error("[geowatch-testkit] this check needs capabilities.append");
  const key = `${runId()}-append`;
  await write(h, key, "one\n", true);
  await write(h, key, "two\n", true);
  expectBody(await read(h, key), "one\ntwo\n", "two appends read back as both, in order");
};

const missing: StoreCheck = async (h) => {
  expect(await read(h, `${runId()}-missing`), "a key never written reads undefined").toBeUndefined();
};

const unicode: StoreCheck = async (h) => {
  const key = `${runId()}-unicode`;
  const body = UNICODE_SAMPLES.join("\n") + "\n";
  await write(h, key, body);
  expectBody(await read(h, key), body, "unicode reads back");
};

const closeIdempotent: StoreCheck = async (h) => {
  const s = await h.store();
  try {
    await s.connect?.();
  } finally {
    await s.close?.();
    await s.close?.();
  }
  const g = guardStore(await h.store(), { name: "testkit", backend: "testkit" });
  await g.close();
  await g.close();
  const err = await g.write({ key: `${runId()}-closed`, body: "x", contentType: "text/plain", append: false }).then(() => undefined, (e: unknown) => e);
  expect(isGeoWatchError(err, "CLOSED"), `write after close rejects with code CLOSED (got ${String(err)})`).toBe(true);
};

/** The store checks, each runnable on its own against a set-up harness. */
export const storeChecks = { roundTrip, replace, append, missing, unicode, closeIdempotent } satisfies Record<string, StoreCheck>;

/** Which checks a store's capabilities call for. */
export function storePlan(caps: StoreCapabilities): Array<[string, StoreCheck]> {
  const plan: Array<[string, StoreCheck]> = [
    ["write then read round trip", roundTrip],
    ["write without append replaces", replace],
  ];
  if (caps.append) plan.push(["write with append adds to the value", append]);
  plan.push(
    ["a missing key reads undefined", missing],
    ["unicode bodies read back byte-exact", unicode],
    ["close is idempotent (and write after close is refused by the runtime layer)", closeIdempotent],
  );
  return plan;
}

/** `describe("<name> store conformance")`: one test per claimed capability. */
export function storeSuite(name: string, opts: StoreSuiteOptions): void {
  describe(`${name} store conformance`, () => {
    for (const [title, check] of storePlan(opts.capabilities)) {
      it(title, async () => {
        const h = await opts.setup();
        try {
          await check(h, opts.capabilities);
        } finally {
          await h.teardown?.();
        }
      });
    }
  });
}
