import { geowatchBuild } from "../../tsup.shared.mjs";
// point-worker.ts runs in the geofence stage's worker threads (option `workers`): its own entry, next to index.js.
export default geowatchBuild({ entry: ["src/index.ts", "src/point-worker.ts"] });
