import { geowatchTest } from "../../vitest.shared.mjs";
export default geowatchTest({ fileParallelism: false });
