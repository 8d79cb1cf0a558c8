/**
 * Worker thread of the geofence stage's `workers` option: answers point-in-fence queries for a batch's points
 * from a copy of the stage's fence index (its typed arrays, sent once at start). Pure computation: no state,
 * nothing written; the stage keeps the tracks' state and makes the events. Queries come and go through a ring in
 * shared memory (see `point-workers.ts`); between them the thread sleeps in `Atomics.wait`.
 */
import { parentPort, workerData } from "node:worker_threads";
import { FenceIndex } from "./fence-index.js";
import type { PointQueryData } from "./fence-index.js";
import { DONE, POSTED, STOP, ringViews } from "./point-workers.js";
import type { RingLayout } from "./point-workers.js";

const data = workerData as { index: PointQueryData; sab: SharedArrayBuffer; layout: RingLayout };
const index = FenceIndex.forPointQueries(data.index);
const { slots, cap, hitCap } = data.layout;
const { head, xy, meta, counts, hits } = ringViews(data.sab, data.layout);
parentPort!.postMessage({ ready: true });

let done = 0;
for (;;) {
  while (Atomics.load(head, POSTED) === done) {
    if (Atomics.load(head, STOP) !== 0) process.exit(0);
    Atomics.wait(head, POSTED, done);
  }
  if (Atomics.load(head, STOP) !== 0) process.exit(0);
  const slot = done % slots;
  const n = meta[2 * slot]!;
  const used = index.queryPointsInto(xy, slot * 2 * cap, n, counts, slot * cap, hits, slot * hitCap, hitCap);
  meta[2 * slot + 1] = used;
  Atomics.store(head, DONE, ++done);
  Atomics.notify(head, DONE);
}
