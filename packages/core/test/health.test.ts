import { describe, expect, it } from "vitest";
import { guardConsumer } from "../src/managed.js";
import { Runtime } from "../src/runtime.js";
import { z } from "zod";
import { defineBackend } from "../src/define.js";
import type { BackendHealth, Consumer } from "../src/types.js";

describe("backend health hook", () => {
  it("a ready backend whose health() is not ok is `reconnecting`, with its error, until it recovers", async () => {
    let health: BackendHealth = { ok: true };
    const c = guardConsumer({ receive: async () => [], connect: async () => undefined, health: () => health }, { name: "in", backend: "probe" });
    expect(c.state).toBe("idle");
    health = { ok: false, error: "not yet asked" };
    expect(c.state).toBe("idle"); // not consulted before the first connect
    health = { ok: true };
    await c.connect();
    expect(c.state).toBe("ready");
    expect(c.lastError).toBeUndefined();
    health = { ok: false, error: "connection lost" };
    expect(c.state).toBe("reconnecting");
    expect(c.lastError?.message).toBe("connection lost");
    health = { ok: true };
    expect(c.state).toBe("ready");
    await c.close();
    health = { ok: false };
    expect(c.state).toBe("closed");
  });

  it("a health hook that throws counts as not ok; backends without one stay ready", async () => {
    const c = guardConsumer(
      {
        receive: async () => [],
        health: () => {
          throw new Error("boom");
        },
      },
      { name: "in", backend: "probe" },
    );
    await c.connect();
    expect(c.state).toBe("reconnecting");
    expect(c.lastError?.message).toMatch(/boom/);
    const plain = guardConsumer({ receive: async () => [] }, { name: "p", backend: "probe" });
    await plain.connect();
    expect(plain.state).toBe("ready");
  });

  it("Provisioned.ready() and health() consult it", async () => {
    const state: BackendHealth = { ok: true };
    const probe = defineBackend({
      name: "probe",
      description: "test producer",
      producer: { options: z.strictObject({}), create: () => ({ send: async (rs) => rs.map(() => ({ ok: true as const })), health: () => ({ ...state }) }) },
    });
    const app = await new Runtime({ backends: [probe] }).load({ brokers: [{ name: "b", consumers: [{ backend: "memory", topic: "health-in" }], producers: [{ name: "out", backend: "probe" }] }] });
    await app.connect();
    expect(app.ready()).toBe(true);
    Object.assign(state, { ok: false, error: "broker 127.0.0.1:9 unreachable" });
    expect(app.ready()).toBe(false);
    expect(app.health().find((h) => h.node === "out")).toMatchObject({ node: "out", state: "reconnecting", error: "broker 127.0.0.1:9 unreachable" });
    Object.assign(state, { ok: true, error: undefined });
    expect(app.ready()).toBe(true);
    expect(app.health().find((h) => h.node === "out")).toMatchObject({ node: "out", state: "ready" });
    expect(app.health().find((h) => h.node === "out")!.error).toBeUndefined();
    await app.stop();
  });
});

describe("the runtime layer's extra methods", () => {
  it("a backend's own methods wait for connect and are refused after close", async () => {
    let connects = 0;
    const raw: Consumer & { extend(n: number): Promise<number> } = {
      receive: async () => [],
      connect: async () => {
        await new Promise((r) => setTimeout(r, 20));
        connects++;
      },
      extend: async (n: number) => n * 2,
    };
    const c = guardConsumer(raw, { name: "in", backend: "probe" });
    expect(await Promise.all([c.extend(1), c.extend(2), c.receive(1, { waitMs: 0 })])).toEqual([2, 4, []]);
    expect(connects).toBe(1);
    await c.close();
    await expect(c.extend(3)).rejects.toThrow(/"in" is closed/);
  });
});
