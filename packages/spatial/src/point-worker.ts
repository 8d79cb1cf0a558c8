/**
 * Worker thread of the geofence stage's `workers` option: answers point-in-fence queries for a batch's points
 * from a copy of the stage's fence index (its typed arrays, sent once at start). Pure computation: no state,
 * nothing written; the stage keeps the tracks' state and makes the events.
 */
import { parentPort, workerData } from "node:worker_threads";
import { FenceIndex } from "./fence-index.js";
import type { PointQueryData } from "./fence-index.js";

const index = FenceIndex.forPointQueries(workerData as PointQueryData);
const port = parentPort!;
port.postMessage({ ready: true });
port.on("message", (m: { id: number; xy: Float64Array; n: number }) => {
  const { counts, hits } = index.queryPoints(m.xy, m.n);
  port.postMessage({ id: m.id, counts, hits }, [counts.buffer as ArrayBuffer, hits.buffer as ArrayBuffer]);
});
