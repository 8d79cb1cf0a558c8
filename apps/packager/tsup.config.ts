import { geowatchBuild } from "../../tsup.shared.mjs";
export default geowatchBuild({ entry: ["src/index.ts", "src/cli.ts", "src/thread.ts"] });
