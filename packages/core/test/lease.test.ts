import { afterEach, beforeEach, describe, expect, it, vi } from "vitest";
import { LeaseKeeper } from "../src/lease.js";

interface H {
  id: number;
}
const h = (...ids: number[]): H[] => ids.map((id) => ({ id }));
const ids = (hs: H[]) => hs.map((x) => x.id).sort((a, b) => a - b);

beforeEach(() => {
  vi.useFakeTimers();
});
afterEach(() => {
  vi.useRealTimers();
});

function keeper(extend: (hs: H[]) => H[] | void | Promise<H[] | void>, extra: { maxHoldMs?: number; onError?: (e: unknown) => void } = {}) {
  return new LeaseKeeper<H>({ intervalMs: 100, key: (x) => String(x.id), extend, now: () => Date.now(), ...extra });
}

describe("LeaseKeeper", () => {
  it("extends every held lease in one call per interval, and nothing once they are forgotten", async () => {
    const calls: number[][] = [];
    const k = keeper((hs) => void calls.push(ids(hs)));
    expect(vi.getTimerCount(), "no timer while nothing is held").toBe(0);
    k.track(h(1, 2, 3));
    expect(k.size).toBe(3);
    await vi.advanceTimersByTimeAsync(99);
    expect(calls).toEqual([]);
    await vi.advanceTimersByTimeAsync(1);
    expect(calls).toEqual([[1, 2, 3]]);
    expect(k.forget(h(2, 9))).toBe(1);
    k.track(h(4));
    await vi.advanceTimersByTimeAsync(100);
    expect(calls).toEqual([[1, 2, 3], [1, 3, 4]]);
    k.forget(h(1, 3, 4));
    expect(vi.getTimerCount(), "the timer stops when nothing is held").toBe(0);
    await vi.advanceTimersByTimeAsync(1000);
    expect(calls).toHaveLength(2);
  });

  it("forgets the leases extend reports lost, and keeps going after extend throws", async () => {
    const calls: number[][] = [];
    const errors: unknown[] = [];
    let fail = true;
    const k = keeper(
      (hs) => {
        calls.push(ids(hs));
        if (fail) {
          fail = false;
          throw new Error("database is locked");
        }
        return hs.filter((x) => x.id === 2);
      },
      { onError: (e) => errors.push(e) },
    );
    k.track(h(1, 2));
    await vi.advanceTimersByTimeAsync(100);
    expect(errors.map((e) => (e as Error).message)).toEqual(["database is locked"]);
    expect(k.size, "a failed extend forgets nothing").toBe(2);
    await vi.advanceTimersByTimeAsync(100);
    expect(ids(k.handles()), "2 was lost").toEqual([1]);
    await vi.advanceTimersByTimeAsync(100);
    expect(calls).toEqual([[1, 2], [1, 2], [1]]);
  });

  it("does not overlap a slow extend", async () => {
    let running = 0;
    let most = 0;
    let calls = 0;
    const k = keeper(async () => {
      calls++;
      most = Math.max(most, ++running);
      await new Promise((r) => setTimeout(r, 250));
      running--;
    });
    k.track(h(1));
    await vi.advanceTimersByTimeAsync(1000);
    expect(calls).toBeGreaterThan(1);
    expect(most).toBe(1);
    k.stop();
  });

  it("stops extending a lease maxHoldMs after it was tracked", async () => {
    const calls: number[][] = [];
    const k = keeper((hs) => void calls.push(ids(hs)), { maxHoldMs: 250 });
    k.track(h(1));
    await vi.advanceTimersByTimeAsync(150);
    k.track(h(2));
    await vi.advanceTimersByTimeAsync(250);
    // Ticks at 100, 200 (1 and 2 after 150), 300 (1 is 300 ms old: dropped), 400 (2 is 250 ms old: dropped).
    expect(calls).toEqual([[1], [1, 2], [2]]);
    expect(k.size).toBe(0);
    expect(vi.getTimerCount()).toBe(0);
  });

  it("stop returns what is held, ends the timer and ignores later tracking", async () => {
    const calls: number[][] = [];
    const k = keeper((hs) => void calls.push(ids(hs)));
    k.track(h(5, 6));
    expect(ids(k.stop())).toEqual([5, 6]);
    expect(k.size).toBe(0);
    expect(vi.getTimerCount()).toBe(0);
    k.track(h(7));
    await vi.advanceTimersByTimeAsync(1000);
    expect(calls).toEqual([]);
    expect(k.size).toBe(0);
  });

  it("with intervalMs 0 it only tracks, and tick extends on demand", async () => {
    const calls: number[][] = [];
    const k = new LeaseKeeper<H>({ intervalMs: 0, key: (x) => String(x.id), extend: (hs) => void calls.push(ids(hs)) });
    k.track(h(1));
    expect(vi.getTimerCount()).toBe(0);
    await vi.advanceTimersByTimeAsync(1000);
    expect(calls).toEqual([]);
    await k.tick();
    expect(calls).toEqual([[1]]);
    expect(() => new LeaseKeeper<H>({ intervalMs: -1, key: String, extend: () => {} })).toThrow(RangeError);
  });
});
